package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/internal/config"
)

// passwdMain runs `mppd passwd [--config FILE] [--file PATH]
// [--address ADDR]... USER`: it sets USER's password in the password file,
// adding USER if needed (passwd does the work).
//
// The file defaults to [authn.passwdfile] path of the config file, so the
// config is loaded, unless --file names the file; then a config that cannot
// be loaded does not matter. --address may be repeated or given a comma
// list; the values are joined into one list.
func passwdMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	configPath, rest, err := splitPasswdArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "mppd passwd: %v\n", err)
		return exitConfig
	}
	env := passwdEnv{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if !hasFlag(rest, "file") {
		cfg, err := config.Load(configPath)
		if err != nil {
			fmt.Fprintf(stderr, "mppd passwd: %v\n", err)
			return exitConfig
		}
		env.Path = cfg.Authn.Passwdfile.Path
	}
	if err := passwd(rest, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	return exitOK
}

// splitPasswdArgs takes --config out of args (it is ours, not the
// subcommand's), and merges repeated --address flags into one comma list.
// Flags end at the first non-flag argument or "--", as with package flag.
func splitPasswdArgs(args []string) (configPath string, rest []string, err error) {
	configPath = config.DefaultPath
	var addrs []string
	addrSet := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "config", "address":
			if !hasValue {
				if i+1 >= len(args) {
					return "", nil, fmt.Errorf("flag needs an argument: -%s", name)
				}
				i++
				value = args[i]
			}
			if name == "config" {
				configPath = value
			} else {
				addrSet = true
				for _, v := range strings.Split(value, ",") {
					if v = strings.TrimSpace(v); v != "" {
						addrs = append(addrs, v)
					}
				}
			}
		default:
			rest = append(rest, a)
			// A flag of the subcommand taking a value in the next
			// argument ("-file PATH").
			if name == "file" && !hasValue && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
		}
	}
	if addrSet {
		rest = append(rest, "-address="+strings.Join(addrs, ","))
	}
	rest = append(rest, args[i:]...)
	return configPath, rest, nil
}

// hasFlag reports whether args (flags first) set the flag name.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			return false
		}
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n == name {
			return true
		}
	}
	return false
}

// passwdEnv is what passwd needs from its caller.
type passwdEnv struct {
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

// passwd implements `mppd passwd [-file PATH] [-address LIST] USER`: it sets
// USER's password in the password file (passwdfile.SetPassword), adding
// the user if needed. args are what splitPasswdArgs leaves.
//
// -address a@x,b@y sets the addresses the user may send as (the first is
// the primary one); -address "" removes them (user@mail_domain applies);
// without the flag a user's existing addresses are kept.
//
// It returns flag.ErrHelp after printing the usage for -h, and any other
// error for the caller to print and exit non-zero with. The running daemon
// notices the changed file by itself within a second.
func passwd(args []string, env passwdEnv) error {
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
	if err := passwdfile.CheckUser(user); err != nil {
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
		if err := passwdfile.CheckAddresses(addrs); err != nil {
			return fmt.Errorf("mppd passwd: %w", err)
		}
	}
	pw, err := readNewPassword(user, env)
	if err != nil {
		return fmt.Errorf("mppd passwd: %w", err)
	}
	if err := passwdfile.SetPassword(*path, user, pw, addrs); err != nil {
		return fmt.Errorf("mppd passwd: %w", err)
	}
	fmt.Fprintf(env.Stdout, "password for %s set in %s\n", user, *path)
	return nil
}

// readNewPassword reads the new password: from a terminal twice without
// echo, else the first line of env.Stdin.
func readNewPassword(user string, env passwdEnv) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(env.Stderr, "New password for %s: ", user)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", err
		}
		if err := passwdfile.CheckPassword(string(p1)); err != nil {
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
	r := bufio.NewReaderSize(io.LimitReader(env.Stdin, passwdfile.MaxPasswordLen+2), passwdfile.MaxPasswordLen+2)
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on standard input")
		}
		return "", err
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if err := passwdfile.CheckPassword(line); err != nil {
		return "", err
	}
	return line, nil
}
