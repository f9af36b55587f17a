//go:build !windows

package main

import (
	"context"
	"os"
	"os/exec"
)

// openTerminal opens the controlling terminal, to read a password from
// and to write the prompt to.
func openTerminal() (in, out *os.File, err error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	return tty, tty, nil
}

// shellCommand runs command line with the shell.
func shellCommand(ctx context.Context, command string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", "-c", command)
}
