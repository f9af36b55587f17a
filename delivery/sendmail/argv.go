package sendmail

import (
	"errors"
	"fmt"
	"strconv"
)

// buildArgv returns the argument vector for one submission:
//
//	path -i -f <sender> -- <rcpt>...
//
// -i: a line holding a single "." is text, not the end of the input (the
// engine has already undone dot-stuffing; see docs/hostile-inputs.md,
// case 19). -f: the envelope sender is the authenticated address, so
// bounces and Return-Path name the real sender. "--": everything after it
// is a recipient, never an option (Postfix sendmail(1), SECURITY).
// Recipients are given explicitly: never -t, which would let Resent-*
// headers choose them (case 37).
//
// This is the last line of defence, not the address grammar (that is
// package address, checked before): every address must be non-empty, must
// not start with '-', and must hold no space, no control character and no
// DEL. With "--" in place a leading '-' could not be an option for Postfix,
// but other MTAs' sendmail wrappers have parsed options after "--" before
// (OpenSMTPD CVE-2020-7247 shows how an address becomes a command), so the
// rule holds for the sender and every recipient alike.
func buildArgv(path, sender string, rcpts []string) ([]string, error) {
	if len(rcpts) == 0 {
		return nil, errors.New("no recipients")
	}
	if err := argSafe(sender); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	argv := make([]string, 0, 5+len(rcpts))
	argv = append(argv, path, "-i", "-f", sender, "--")
	for _, r := range rcpts {
		if err := argSafe(r); err != nil {
			return nil, fmt.Errorf("recipient: %w", err)
		}
		argv = append(argv, r)
	}
	return argv, nil
}

// argSafe reports why s cannot go on sendmail's command line, or nil.
func argSafe(s string) error {
	if s == "" {
		return errors.New("empty address")
	}
	if s[0] == '-' {
		return fmt.Errorf("address %s starts with '-'", quote(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("address %s contains a space or control character", quote(s))
		}
	}
	return nil
}

// quote returns s quoted and escaped for a log line, cut to 64 octets so
// that hostile input stays short.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.QuoteToASCII(s)
	}
	return strconv.QuoteToASCII(s[:max]) + "..."
}
