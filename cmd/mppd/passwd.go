package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/internal/config"
)

// passwdMain runs `mppd passwd [--config FILE] [--file PATH]
// [--address ADDR]... USER`: it sets USER's password in the password file,
// adding USER if needed (passwdfile.Passwd does the work).
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
	env := passwdfile.PasswdEnv{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if !hasFlag(rest, "file") {
		cfg, err := config.Load(configPath)
		if err != nil {
			fmt.Fprintf(stderr, "mppd passwd: %v\n", err)
			return exitConfig
		}
		env.Path = cfg.Authn.Passwdfile.Path
	}
	if err := passwdfile.Passwd(rest, env); err != nil {
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
