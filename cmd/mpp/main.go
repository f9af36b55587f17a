// Command mpp posts mail to a Message Posting Protocol server (RFC 1204),
// such as mppd.
//
//	mpp send [options] [FILE]
//	mpp sendmail [sendmail flags] [recipient ...]   (or mpp run as "sendmail")
//	mpp bench [options]
//	mpp version
//
// The wire protocol lives in mppd/internal/mppclient; this package only
// turns flags, environment, config file and terminal into sessions, and a
// failure into one line on stderr and a sysexits.h exit status.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	exConfig      = 78 // EX_CONFIG: the config file or a password source is wrong
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
	os.Exit(c.main(os.Args))
}

// main runs mpp with argv as the kernel gave it, program name first.
// Installed or linked as "sendmail", mpp is sendmail: programs that call
// /usr/sbin/sendmail post through MPP.
func (c *cli) main(argv []string) int {
	if len(argv) > 0 && filepath.Base(argv[0]) == "sendmail" {
		return c.sendmail(argv[1:])
	}
	if len(argv) == 0 {
		return c.run(nil)
	}
	return c.run(argv[1:])
}

const usage = `usage: mpp send [options] [FILE]
       mpp sendmail [-t] [-i] [-f addr] [-F name] [-v] [--] [recipient ...]
       mpp bench [options]
       mpp version

Commands:
  send      post one RFC 822 message, read from FILE or standard input
  sendmail  post a message as /usr/sbin/sendmail would (also when mpp is
            run under the name "sendmail")
  bench     load-test an MPP server
  version   print the version

Run "mpp COMMAND -h" for a command's options; mpp(1) has the details.
`

func (c *cli) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exUsage
	}
	switch args[0] {
	case "send":
		return c.send(args[1:])
	case "sendmail":
		return c.sendmail(args[1:])
	case "bench":
		return c.bench(args[1:])
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
