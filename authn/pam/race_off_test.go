//go:build !race

package pam

const raceEnabled = false
