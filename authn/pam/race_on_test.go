//go:build pam && race

package pam

// raceEnabled: the race detector keeps shadow memory and per-goroutine
// history, so RSS is no measure of leaks under it.
const raceEnabled = true
