//go:build pam && !race

package pam

const raceEnabled = false
