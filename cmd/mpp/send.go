package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/mppd/mppd/internal/mppclient"
)

const sendUsage = `usage: mpp send [-v] [-s server] [-u user] [--tls] [--ca-file file]
                [--server-name name] [--config file] [--password-file file]
                [--password-command command] [--timeout d] [FILE]

Posts one RFC 822 message (FILE, or standard input) over MPP. Settings come
from the flags, else the environment (MPP_SERVER, MPP_USER, MPP_PASSWORD,
MPP_TLS, MPP_CA_FILE, MPP_SERVER_NAME), else the config file; the password,
if none is set, is asked for on the terminal. See mpp(1).

`

func (c *cli) send(args []string) int {
	fs := flag.NewFlagSet("mpp send", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf connFlags
	cf.register(fs)
	if st, done := c.parseFlags(fs, sendUsage, args); done {
		return st
	}
	if fs.NArg() > 1 {
		return c.errorf(exUsage, "send takes at most one FILE, got %d arguments", fs.NArg())
	}
	s, err := c.resolve(&cf)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	opt, err := c.sessionOptions(s, cf.verbose, "use -u, or set "+envUser)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}

	// Open the message before asking for a password, so a typo in FILE
	// does not cost the user a prompt.
	var msg io.Reader = c.stdin
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return c.errorf(exNoInput, "%v", err)
		}
		defer f.Close()
		msg = f
	}

	password, err := c.getPassword(s)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	if err := mppclient.CheckLogin(s.user, password); err != nil {
		return c.errorf(exUsage, "%v", err)
	}

	// A message typed on the terminal is read in full before connecting,
	// so the server's idle timeout (RFC 1204 §3.3) does not run while the
	// user types. Files and pipes are streamed.
	if f, ok := msg.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintln(c.stderr, "mpp: type the message (headers, empty line, body), then Ctrl-D")
		data, err := io.ReadAll(f)
		if err != nil {
			return c.errorf(exIOErr, "reading the message: %v", err)
		}
		msg = bytes.NewReader(data)
	}

	if err := post(s, password, msg, opt); err != nil {
		return c.errorf(exitStatus(err), "%v", err)
	}
	return exOK
}

// post runs one session: greeting, login, one message, QUIT.
func post(s *settings, password string, msg io.Reader, opt mppclient.Options) error {
	cl, err := dialLogin(context.Background(), s, password, opt)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Send(msg); err != nil {
		cl.Quit()
		return err
	}
	// The message is queued once the server said 250 to the text; a
	// failed QUIT after that changes nothing for the user.
	cl.Quit()
	return nil
}

// exitStatus maps a failure to a sysexits.h status.
func exitStatus(err error) int {
	var re *mppclient.ReplyError
	switch {
	case errors.As(err, &re):
		code := re.Reply.Code
		switch {
		case code/100 == 4:
			return exTempFail
		case code == 530, re.Step == "PASS" && code == 501:
			return exNoPerm
		case re.Step == "USER" && code == 501:
			return exNoUser
		case code == 550 && strings.Contains(re.Reply.Text, ": recipient "):
			// mppd names a refused recipient as "To: recipient X
			// refused": the addressee, not the message, is at fault.
			return exNoUser
		case code == 550:
			return exDataErr
		}
		// 500, 503 or a success code out of place: client and server
		// disagree about the protocol.
		return exProtocol
	case errors.As(err, new(*mppclient.ProtocolError)):
		return exProtocol
	case errors.As(err, new(*mppclient.ConnError)):
		return exUnavailable
	case errors.As(err, new(*mppclient.InputError)):
		return exIOErr
	case errors.As(err, new(*mppclient.ArgumentError)):
		return exUsage
	}
	return exSoftware
}

// promptPassword asks on the controlling terminal (not stdin, which may
// hold the message) with echo off.
func promptPassword(prompt string) (string, error) {
	in, tty, err := openTerminal()
	if err != nil {
		return "", errNoTerminal
	}
	defer in.Close()
	defer tty.Close()
	fd := int(in.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", errNoTerminal
	}
	// Interrupted at the prompt, put echo back before dying, or the
	// user's shell is left typing blind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			term.Restore(fd, state)
			fmt.Fprintln(tty)
			os.Exit(130)
		case <-done:
		}
	}()
	defer signal.Stop(sig)

	fmt.Fprint(tty, prompt)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(tty)
	if err != nil {
		return "", err
	}
	return string(pw), nil
}
