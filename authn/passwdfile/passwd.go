package passwdfile

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// PasswdEnv is what the `mppd passwd` subcommand needs from its caller.
type PasswdEnv struct {
	// Path is the password file used when no -file flag is given: the
	// daemon passes [authn.passwdfile] path from its configuration.
	Path string
	// Stdin is where the password comes from. When it is an *os.File on a
	// terminal, the password is asked for twice without echo; otherwise
	// its first line is the password.
	Stdin io.Reader
	// Stdout gets the one-line result, Stderr prompts and usage.
	Stdout, Stderr io.Writer
}

// Passwd implements `mppd passwd [-file PATH] [-address LIST] USER`: it sets
// USER's password in the password file (SetPassword), adding the user if
// needed. args are the arguments after "passwd".
//
// -address a@x,b@y sets the addresses the user may send as (the first is
// the primary one); -address "" removes them (user@mail_domain applies);
// without the flag a user's existing addresses are kept.
//
// It returns flag.ErrHelp after printing the usage for -h, and any other
// error for the caller to print and exit non-zero with. The running daemon
// notices the changed file by itself within a second.
func Passwd(args []string, env PasswdEnv) error {
	fs := flag.NewFlagSet("mppd passwd", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("file", env.Path, "password file to change")
	addrList := fs.String("address", "", "comma-separated addresses the user may send as; empty to remove them")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mppd passwd [-file PATH] [-address a@x,b@y] USER\n\n"+
			"Sets USER's password in the password file, adding USER if needed.\n"+
			"The password is read from the terminal (twice, without echo) or\n"+
			"from the first line of standard input.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("mppd passwd: want exactly one USER argument")
	}
	user := fs.Arg(0)
	if *path == "" {
		return errors.New("mppd passwd: no password file: give -file or set [authn.passwdfile] path")
	}
	if err := CheckUser(user); err != nil {
		return fmt.Errorf("mppd passwd: %w", err)
	}
	var addrs []string // nil: keep
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "address" {
			addrs = []string{}
			if strings.TrimSpace(*addrList) != "" {
				addrs = strings.Split(*addrList, ",")
			}
		}
	})
	if len(addrs) > 0 {
		if _, err := parseAddressList(strings.Join(addrs, ",")); err != nil {
			return fmt.Errorf("mppd passwd: %w", err)
		}
	}
	pw, err := readNewPassword(user, env)
	if err != nil {
		return fmt.Errorf("mppd passwd: %w", err)
	}
	if err := SetPassword(*path, user, pw, addrs); err != nil {
		return fmt.Errorf("mppd passwd: %w", err)
	}
	fmt.Fprintf(env.Stdout, "password for %s set in %s\n", user, *path)
	return nil
}

// readNewPassword reads the new password: from a terminal twice without
// echo, else the first line of env.Stdin.
func readNewPassword(user string, env PasswdEnv) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(env.Stderr, "New password for %s: ", user)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", err
		}
		if err := CheckPassword(string(p1)); err != nil {
			return "", err
		}
		fmt.Fprintf(env.Stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords do not match")
		}
		return string(p1), nil
	}
	if env.Stdin == nil {
		return "", errors.New("no standard input to read the password from")
	}
	// Not a terminal: a script pipes the password in. Read one line,
	// at most a little over the limit so a huge input is refused, not
	// buffered.
	r := bufio.NewReaderSize(io.LimitReader(env.Stdin, maxPasswordLen+2), maxPasswordLen+2)
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on standard input")
		}
		return "", err
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if err := CheckPassword(line); err != nil {
		return "", err
	}
	return line, nil
}
