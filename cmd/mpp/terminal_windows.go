//go:build windows

package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
)

// openTerminal opens the console: CONIN$ to read a password from (read
// and write access, which changing its echo mode needs) and CONOUT$ for
// the prompt.
func openTerminal() (in, out *os.File, err error) {
	in, err = os.OpenFile("CONIN$", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	out, err = os.OpenFile("CONOUT$", os.O_WRONLY, 0)
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	return in, out, nil
}

// shellCommand runs command line with cmd.exe. The line is handed over
// as written (CmdLine): Go's quoting of arguments follows the C runtime's
// rules, which cmd.exe does not.
func shellCommand(ctx context.Context, command string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "cmd.exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: `cmd.exe /d /s /c "` + command + `"`}
	return cmd
}
