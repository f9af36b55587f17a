// Package address is the one mailbox grammar of mppd. The engine checks
// recipients with it, the delivery backends rely on it before an address
// becomes a file name (maildir) or an argument (sendmail), and the
// anti-forgery check compares addresses with Equal.
//
// The grammar is deliberately narrower than RFC 5322 §3.4.1, because an
// address that passes here ends up on a command line and in file names:
//
//   - local@domain, ASCII only (no RFC 6531 SMTPUTF8).
//   - The local part is a dot-atom of RFC 5322 atext, at most 64 octets
//     (RFC 5321 §4.5.3.1.1). No quoted local parts: a quoted string may hold
//     spaces and quotes, which is how the PHPMailer payload of
//     CVE-2016-10033 smuggled sendmail options into one "address".
//   - The local part never starts with '-' (it would read as an option:
//     sendmail option injection, OpenSMTPD CVE-2020-7247), nor with '|' or
//     '/' (program and file delivery in sendmail aliases, .forward files and
//     Postfix local(8)), and never contains '$' or '`' (expansion and
//     command substitution: Exim CVE-2019-10149; no real mailbox uses
//     them). RFC 5322 allows all of these; we do not need them.
//   - The domain is one or more dot-separated LDH labels (letters, digits,
//     hyphen; 1 to 63 octets; no leading or trailing hyphen), at most 255
//     octets, no trailing dot. An address literal such as
//     user@[192.0.2.1] is refused: local submission always names a domain
//     the MTA routes by, and a literal bypasses the MTA's routing and
//     relay policy while giving the client a free-form bracketed string.
//   - The whole address is at most 254 octets (RFC 5321 §4.5.3.1.3: a path
//     is at most 256 octets including the angle brackets).
//
// Together these guarantee that a valid address has no byte at or below
// 0x20, no 0x7f, no quote, no backslash and no leading '-'.
package address

import (
	"strconv"
	"strings"
)

// Length limits, in octets.
const (
	MaxLocal  = 64  // RFC 5321 §4.5.3.1.1
	MaxDomain = 255 // RFC 5321 §4.5.3.1.2
	MaxLength = 254 // RFC 5321 §4.5.3.1.3, minus "<" and ">"
	maxLabel  = 63  // RFC 1035 §2.3.4
)

// Error says why an address was refused. Input holds a quoted, escaped and
// truncated form of the address (see Quote), so the error can be logged or
// shown to a client without echoing huge or hostile input.
type Error struct {
	Input  string // Quote(addr)
	Reason string // what is wrong, in a few words
}

func (e *Error) Error() string {
	return "invalid address " + e.Input + ": " + e.Reason
}

func fail(addr, reason string) error {
	return &Error{Input: Quote(addr), Reason: reason}
}

// quoteMax is the most characters Quote shows between its quotes.
const quoteMax = 64

// Quote returns s as a Go-quoted ASCII string (every control byte, quote,
// backslash and non-ASCII byte escaped), cut so that at most 64 characters
// stand between the quotes, with "..." after the closing quote when s was
// cut. The result (at most 69 octets) is safe in a log line and in a reply
// line.
func Quote(s string) string {
	k := min(len(s), quoteMax)
	q := strconv.QuoteToASCII(s[:k])
	for len(q) > quoteMax+2 { // an escape is at most 10 octets: bounded
		k--
		q = strconv.QuoteToASCII(s[:k])
	}
	if k < len(s) {
		q += "..."
	}
	return q
}

// Valid reports whether addr is a mailbox mppd accepts, with an *Error
// saying what is wrong when it is not.
func Valid(addr string) error {
	_, err := Parse(addr)
	return err
}

// Parse checks addr and returns its canonical form: the domain is
// lower-cased, the local part is kept as written because RFC 5321 §2.4 says
// it may be case-sensitive ("Alice" and "alice" may be different
// mailboxes) and only the receiving host may decide otherwise.
func Parse(addr string) (string, error) {
	if addr == "" {
		return "", fail(addr, "empty")
	}
	if len(addr) > MaxLength {
		return "", fail(addr, "longer than 254 octets")
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", fail(addr, "no '@' (only fully qualified addresses are accepted)")
	}
	local, domain := addr[:at], addr[at+1:]
	if err := checkLocal(local); err != "" {
		return "", fail(addr, err)
	}
	if err := checkDomain(domain); err != "" {
		return "", fail(addr, err)
	}
	return local + "@" + strings.ToLower(domain), nil
}

// ValidDomain reports whether d is a domain in the grammar above. The
// daemon's configuration uses it to check the host name mppd writes into
// Received: and Message-ID:.
func ValidDomain(d string) error {
	if err := checkDomain(d); err != "" {
		return &Error{Input: Quote(d), Reason: err}
	}
	return nil
}

// Equal reports whether a and b name the same mailbox for the anti-forgery
// check: both must be valid, and they are compared ignoring ASCII case in
// the local part as well as the domain. RFC 5321 lets a host treat the
// local part as case-sensitive, but no common MTA does (Postfix,
// sendmail, Exim and their lookup tables fold case), and a user who
// writes "From: Alice@example.com" for alice@example.com is not forging
// anything. The cost is that, on a host where Alice and alice are
// different mailboxes, one may use the other's address without a Sender:
// header; the envelope sender and the Received: header still name the
// authenticated user.
func Equal(a, b string) bool {
	if Valid(a) != nil || Valid(b) != nil {
		return false
	}
	return strings.EqualFold(a, b)
}

// isAtext reports whether c is RFC 5322 §3.2.3 atext.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkLocal returns "" when local is an acceptable local part, else what is
// wrong with it.
func checkLocal(local string) string {
	switch {
	case local == "":
		return "empty local part"
	case len(local) > MaxLocal:
		return "local part longer than 64 octets"
	case local[0] == '-':
		return "local part starts with '-'"
	case local[0] == '|' || local[0] == '/':
		return "local part starts with '|' or '/'"
	case local[0] == '.' || local[len(local)-1] == '.':
		return "local part starts or ends with '.'"
	case strings.Contains(local, ".."):
		return "local part has an empty atom (\"..\")"
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c == '.':
		case c == '$' || c == '`':
			return "local part contains '$' or '`'"
		case c == '"':
			return "quoted local parts are not accepted"
		case c <= ' ' || c >= 0x7f:
			return "local part contains a space, control or non-ASCII byte"
		case !isAtext(c):
			return "local part contains " + strconv.QuoteRuneToASCII(rune(c))
		}
	}
	return ""
}

// checkDomain returns "" when domain is acceptable, else what is wrong.
func checkDomain(domain string) string {
	switch {
	case domain == "":
		return "empty domain"
	case len(domain) > MaxDomain:
		return "domain longer than 255 octets"
	case domain[0] == '[':
		return "address literals are not accepted"
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" {
			return "domain has an empty label"
		}
		if len(label) > maxLabel {
			return "domain label longer than 63 octets"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "domain label starts or ends with '-'"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return "domain contains a byte other than a letter, digit, '-' or '.'"
			}
		}
	}
	return ""
}
