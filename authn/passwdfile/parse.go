package passwdfile

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mppd/mppd/internal/address"
)

// ParseError says which line of a password file is wrong and why. It never
// quotes a password hash.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// entry is one user of the file.
type entry struct {
	user  string
	hash  verifier
	addrs []string // lowercased; never empty
	line  int
}

// table is one parsed version of the file.
type table struct {
	users map[string]*entry
	// dummy is checked instead of a hash for an unknown user, so the
	// answer takes as long as for a known one (see Authenticate). It has
	// the scheme and cost most entries use.
	dummy verifier
}

// maxUserLen matches the engine's hard limit on a USER argument.
const maxUserLen = 256

// parse reads a password file's contents. name is used in errors only;
// domain makes the address of users whose line lists none.
func parse(name string, data []byte, domain string) (*table, error) {
	t := &table{users: make(map[string]*entry)}
	kinds := make(map[string]int) // scheme and cost -> entries using it
	var firstOfKind = make(map[string]verifier)
	var order []string
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		fail := func(format string, args ...any) error {
			return &ParseError{File: name, Line: n, Msg: fmt.Sprintf(format, args...)}
		}
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.SplitN(line, ":", 3)
		if len(fields) < 2 {
			return nil, fail("want user:hash or user:hash:address,...")
		}
		user := fields[0]
		if err := CheckUser(user); err != nil {
			return nil, fail("%v", err)
		}
		if prev, dup := t.users[user]; dup {
			return nil, fail("user %q already defined on line %d", user, prev.line)
		}
		h, err := parseHash(fields[1])
		if err != nil {
			return nil, fail("user %q: %v", user, err)
		}
		var addrs []string
		if len(fields) == 3 && strings.TrimSpace(fields[2]) != "" {
			addrs, err = parseAddressList(fields[2])
			if err != nil {
				return nil, fail("user %q: %v", user, err)
			}
		} else {
			a := strings.ToLower(user + "@" + domain)
			if err := CheckAddress(a); err != nil {
				return nil, fail("user %q: %s is not a usable address (%v); list the user's addresses after a second ':'", user, a, err)
			}
			addrs = []string{a}
		}
		t.users[user] = &entry{user: user, hash: h, addrs: addrs, line: n}
		k := h.kind()
		if kinds[k] == 0 {
			firstOfKind[k] = h
			order = append(order, k)
		}
		kinds[k]++
	}
	// The decoy copies the most common scheme and cost, the first one
	// seen on a tie; with no users at all, what HashPassword would make.
	var model verifier
	best := 0
	for _, k := range order {
		if kinds[k] > best {
			model, best = firstOfKind[k], kinds[k]
		}
	}
	if model == nil {
		model = &argon2idHash{p: hashParams, salt: make([]byte, hashParams.SaltLen), key: make([]byte, hashParams.KeyLen)}
	}
	d, err := model.decoy()
	if err != nil {
		return nil, fmt.Errorf("%s: making the decoy hash: %w", name, err)
	}
	t.dummy = d
	return t, nil
}

// parseAddressList parses "a@x, b@y": lowercased, checked, duplicates
// dropped, order kept (the first is the primary address).
func parseAddressList(s string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, a := range strings.Split(s, ",") {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			return nil, errors.New("empty address in the address list")
		}
		if err := CheckAddress(a); err != nil {
			return nil, err
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// CheckAddresses reports whether addrs can be a user's address list (as
// SetPassword takes it), so that a caller can refuse a bad list before
// asking for a password.
func CheckAddresses(addrs []string) error {
	_, err := parseAddressList(strings.Join(addrs, ","))
	return err
}

// CheckUser reports whether name can be a user of a password file: not
// empty, at most 256 octets, valid UTF-8, no ':' (the field separator), no
// space or control character, not starting with '-' (it must never be
// read as an option) or '#' (the line would be a comment).
func CheckUser(name string) error {
	switch {
	case name == "":
		return errors.New("empty user name")
	case len(name) > maxUserLen:
		return fmt.Errorf("user name longer than %d octets", maxUserLen)
	case !utf8.ValidString(name):
		return errors.New("user name is not valid UTF-8")
	case name[0] == '-':
		return fmt.Errorf("user name %q starts with '-'", name)
	case name[0] == '#':
		return fmt.Errorf("user name %q starts with '#'", name)
	case strings.ContainsRune(name, ':'):
		return fmt.Errorf("user name %q contains ':'", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("user name %q contains a space or control character", name)
		}
	}
	return nil
}

// CheckAddress reports whether a is a mailbox mppd accepts as a sender
// address: the one grammar of package internal/address (a dot-atom local
// part not starting with '-', '|' or '/', an LDH domain), so that whatever
// the file grants, the engine and the delivery backends accept too.
func CheckAddress(a string) error { return address.Valid(a) }

// CheckDomain reports whether d is a domain in that grammar.
func CheckDomain(d string) error { return address.ValidDomain(d) }
