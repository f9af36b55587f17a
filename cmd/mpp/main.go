// Command mpp posts mail to a Message Posting Protocol server (RFC 1204),
// such as mppd.
//
//	mpp send [-v] [-s host[:port]] [-u user] [FILE]
//	mpp version
//
// The wire protocol lives in mppd/internal/mppclient; this package only
// turns flags, environment and terminal into a session, and a failure into
// one line on stderr and a sysexits.h exit status.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "devel"

// Exit statuses, from sysexits.h, so that programs calling mpp (as they
// call sendmail) can tell a temporary failure from a permanent one.
const (
	exOK          = 0
	exUsage       = 64 // EX_USAGE: bad command line
	exDataErr     = 65 // EX_DATAERR: the server refused the message (550)
	exNoInput     = 66 // EX_NOINPUT: the message file cannot be opened
	exNoUser      = 67 // EX_NOUSER: the server refused the user name (501)
	exUnavailable = 69 // EX_UNAVAILABLE: no connection to the server
	exSoftware    = 70 // EX_SOFTWARE: a bug in mpp
	exIOErr       = 74 // EX_IOERR: the message could not be read
	exTempFail    = 75 // EX_TEMPFAIL: the server said try again later (4yz)
	exProtocol    = 76 // EX_PROTOCOL: the server's reply made no sense here
	exNoPerm      = 77 // EX_NOPERM: authentication failed (530)
)

// cli is one run of mpp, with its environment made explicit so tests can
// drive it without a process or a terminal.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// readPassword asks the user for a password without echo. It returns
	// errNoTerminal when there is no terminal to ask on.
	readPassword func(prompt string) (string, error)
}

func main() {
	c := &cli{
		stdin:        os.Stdin,
		stdout:       os.Stdout,
		stderr:       os.Stderr,
		getenv:       os.Getenv,
		readPassword: promptPassword,
	}
	os.Exit(c.run(os.Args[1:]))
}

const usage = `usage: mpp send [-v] [-s host[:port]] [-u user] [FILE]
       mpp version

Commands:
  send     post one RFC 822 message, read from FILE or standard input
  version  print the version
`

func (c *cli) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exUsage
	}
	switch args[0] {
	case "send":
		return c.send(args[1:])
	case "version", "-version", "--version":
		fmt.Fprintf(c.stdout, "mpp %s\n", version)
		return exOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return exOK
	}
	fmt.Fprintf(c.stderr, "mpp: unknown command %q\n%s", args[0], usage)
	return exUsage
}

// errorf prints one error line and returns the exit status.
func (c *cli) errorf(status int, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "mpp: "+format+"\n", args...)
	return status
}
