package message

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/address"
)

// Trace is who submitted the message, from the server's side.
type Trace struct {
	// Login is the authenticated login name (authn.Identity.Login).
	Login string
	// Addresses are the addresses the user may send as; the first is the
	// primary one and must be valid. Invalid others are ignored.
	Addresses []string
	// Client is the client's IP address in text form.
	Client string
	// Session is the session id, as in the logs.
	Session string
	// Time is when the message was received; zero means now.
	Time time.Time
}

// checkHostname accepts what the daemon's configuration accepts for its
// host name: LDH labels (RFC 1123 §2.1) of 1 to 63 octets, where an
// underscore is tolerated because real host names have them, at most 253
// octets, one trailing dot allowed and dropped. Every byte of the result is
// atext or '.', so it is safe in Received: and as the right side of a
// Message-ID.
func checkHostname(h string) (string, error) {
	h = strings.TrimSuffix(h, ".")
	bad := func(why string) error {
		return fmt.Errorf("message: Options.Hostname %s: %s", address.Quote(h), why)
	}
	if h == "" {
		return "", bad("empty")
	}
	if len(h) > 253 {
		return "", bad("longer than 253 octets")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", bad("a label is empty, too long, or starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", bad("not a letter, digit, '-' or '_'")
			}
		}
	}
	return strings.ToLower(h), nil
}

// appendReceived appends the trace field, RFC 5321 §4.4 adapted: there is
// no HELO and no TCP-info, so "from" carries only the client's address
// literal. Each part sits on its own line so no line gets long.
func appendReceived(out []byte, host string, tr Trace, opt Options) []byte {
	out = append(out, "Received: "...)
	if opt.ReceivedClientAddress {
		if lit := addressLiteral(tr.Client); lit != "" {
			out = append(out, "from "+lit+"\n\t"...)
		}
	}
	out = append(out, "by "+host+" (mppd) with MPP"...)
	if id := atomOf(tr.Session, 64); id != "" {
		out = append(out, " id "+id...)
	}
	if tr.Login != "" {
		out = append(out, "\n\t(authenticated user "+commentText(tr.Login, 128)+")"...)
	}
	out = append(out, ";\n\t"+formatDate(tr.Time)+"\n"...)
	return out
}

// addressLiteral formats an IP address as an RFC 5321 §4.1.3 address
// literal, or returns "" when s is not an IP address. It is re-formatted
// from the parsed address, never copied, and any zone is dropped.
func addressLiteral(s string) string {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// atomOf keeps the RFC 5322 atext bytes of s and replaces every other byte
// with '_', cut to max octets, so a session id is always one atom.
func atomOf(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	b := []byte(s)
	for i, c := range b {
		if !isAtextByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func isAtextByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
}

// commentText makes s safe inside an RFC 5322 comment: parentheses and
// backslashes become quoted-pairs, and every byte outside printable ASCII
// (controls, CR, LF, NUL, non-ASCII) becomes '?'. It is cut to max octets
// of s first.
func commentText(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '(' || c == ')' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatDate is the RFC 5322 §3.3 date-time of t.
func formatDate(t time.Time) string {
	return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newMessageID returns "<random@host>" (RFC 5322 §3.6.4) with 120 random
// bits, so ids are unique without any state.
func newMessageID(host string) string {
	var r [15]byte
	rand.Read(r[:]) // never fails (crypto/rand, Go 1.24+)
	return "<" + idEncoding.EncodeToString(r[:]) + "@" + host + ">"
}
