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
	"syscall"

	"golang.org/x/term"

	"mppd/internal/mppclient"
)

// Where mpp send finds its settings, in order: flag, environment, default.
const (
	envServer   = "MPP_SERVER"
	envUser     = "MPP_USER"
	envPassword = "MPP_PASSWORD"
	// The default server is this machine on MPP's port (RFC 1204 §3.2).
	defaultServer = "127.0.0.1:" + mppclient.DefaultPort
)

var errNoTerminal = errors.New("no terminal to ask for the password on")

func (c *cli) send(args []string) int {
	fs := flag.NewFlagSet("mpp send", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	server := fs.String("s", "", "server `host[:port]` (default $"+envServer+", else "+defaultServer+")")
	user := fs.String("u", "", "user `name` (default $"+envUser+", else $USER)")
	verbose := fs.Bool("v", false, "print the dialogue with the server on stderr (password masked)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: mpp send [-v] [-s host[:port]] [-u user] [FILE]\n\n"+
			"Posts one RFC 822 message (FILE, or standard input) over MPP.\n"+
			"The password comes from $%s, or is asked for on the terminal.\n\n", envPassword)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exOK
		}
		return exUsage
	}
	if fs.NArg() > 1 {
		return c.errorf(exUsage, "send takes at most one FILE, got %d arguments", fs.NArg())
	}

	addr := firstOf(*server, c.getenv(envServer), defaultServer)
	addr = mppclient.WithDefaultPort(addr)
	login := firstOf(*user, c.getenv(envUser), c.getenv("USER"))
	if login == "" {
		return c.errorf(exUsage, "no user name: use -u, or set %s", envUser)
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

	password := c.getenv(envPassword)
	if password == "" {
		var err error
		password, err = c.readPassword(fmt.Sprintf("Password for %s at %s: ", login, addr))
		if errors.Is(err, errNoTerminal) {
			return c.errorf(exUsage, "no password: set %s, or run mpp on a terminal", envPassword)
		}
		if err != nil {
			return c.errorf(exIOErr, "reading the password: %v", err)
		}
	}

	if err := mppclient.CheckLogin(login, password); err != nil {
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

	opt := mppclient.Options{}
	if *verbose {
		opt.Trace = c.stderr
	}
	if err := post(addr, login, password, msg, opt); err != nil {
		return c.errorf(exitStatus(err), "%v", err)
	}
	return exOK
}

// post runs one session: greeting, login, one message, QUIT.
func post(addr, user, password string, msg io.Reader, opt mppclient.Options) error {
	cl, err := mppclient.Dial(context.Background(), addr, opt)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Login(user, password); err != nil {
		cl.Quit()
		return err
	}
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

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// promptPassword asks on the controlling terminal (not stdin, which may
// hold the message) with echo off.
func promptPassword(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errNoTerminal
	}
	defer tty.Close()
	fd := int(tty.Fd())
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
