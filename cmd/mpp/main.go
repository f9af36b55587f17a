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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
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
	exCantCreat   = 73 // EX_CANTCREAT: the message cannot be queued
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
	// goos is the operating system the default paths are chosen for
	// ("" means runtime.GOOS); root is true when mpp runs as root.
	goos string
	root bool
}

func (c *cli) platform() platform {
	goos := c.goos
	if goos == "" {
		goos = runtime.GOOS
	}
	return platform{goos: goos, getenv: c.getenv, root: c.root}
}

func main() {
	c := &cli{
		stdin:        os.Stdin,
		stdout:       os.Stdout,
		stderr:       os.Stderr,
		getenv:       os.Getenv,
		readPassword: promptPassword,
		// Geteuid is -1 on Windows: never root.
		root: os.Geteuid() == 0,
	}
	os.Exit(c.main(os.Args))
}

// main runs mpp with argv as the kernel gave it, program name first.
// Installed or linked as "sendmail" (sendmail.exe on Windows), mpp is
// sendmail: programs that call /usr/sbin/sendmail post through MPP.
func (c *cli) main(argv []string) int {
	if len(argv) > 0 && isSendmailName(argv[0]) {
		return c.sendmail(argv[1:])
	}
	if len(argv) == 0 {
		return c.run(nil)
	}
	return c.run(argv[1:])
}

const usage = `usage: mpp send [options] [FILE]
       mpp sendmail [-t] [-i] [-f addr] [-F name] [-v] [--] [recipient ...]
       mpp sendmail -bp | -q
       mpp flush [options]
       mpp queue [options]
       mpp bench [options]
       mpp version

Commands:
  send      post one RFC 822 message, read from FILE or standard input
  sendmail  post a message as /usr/sbin/sendmail would (also when mpp is
            run under the name "sendmail"); what the server cannot take
            now is queued
  flush     post the queued messages (sendmail -q)
  queue     list the queued messages (sendmail -bp)
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
	case "flush":
		return c.flush(args[1:])
	case "queue":
		return c.queue(args[1:])
	case "bench":
		return c.bench(args[1:])
	case "version", "-version", "--version":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprint(c.stdout, "usage: mpp version\n\nPrints the version of mpp.\n")
			return exOK
		}
		fmt.Fprintf(c.stdout, "mpp %s\n", version)
		return exOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return exOK
	}
	fmt.Fprintf(c.stderr, "mpp: unknown command %q\n%s", args[0], usage)
	return exUsage
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// parseFlags parses args into fs, whose usage is the text usage followed
// by the flags and their defaults. Asked for help (-h, --help), it prints
// the usage on standard output and returns exOK, done; a bad flag gives
// the error and usage on standard error and exUsage, done.
func (c *cli) parseFlags(fs *flag.FlagSet, usage string, args []string) (status int, done bool) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var out strings.Builder
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(c.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.stdout, out.String())
		return exOK, true
	case err != nil:
		fmt.Fprint(c.stderr, out.String())
		return exUsage, true
	}
	return exOK, false
}

// errorf prints one error line and returns the exit status.
func (c *cli) errorf(status int, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "mpp: "+format+"\n", args...)
	return status
}
