package message

import (
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/mppd/mppd/internal/address"
)

// Recipients returns the recipients of a message, found as Prepare finds
// them (see the package comment): the distinct addresses of To:, Cc: and
// Bcc:, or of their Resent- forms when the message has any Resent- field,
// in canonical form and in order of first appearance. header is a header
// block as Prepare takes it; maxRecipients of zero or less means
// DefaultMaxRecipients. A *Rejection error means the server would refuse
// the message for its header syntax or its recipients (no-recipients
// included); Prepare applies further rules this does not.
func Recipients(header []byte, maxRecipients int) ([]string, error) {
	opt := withDefaults(Options{MaxRecipients: maxRecipients})
	fields, err := parseFields(header)
	if err != nil {
		return nil, err
	}
	if err := checkResentLayout(fields); err != nil {
		return nil, err
	}
	return recipients(fields, hasResent(fields), opt)
}

// hasResent reports whether any field is a Resent- field: then the
// message is being resent, and only the Resent- fields name recipients
// (checkResentLayout has made sure they are one block).
func hasResent(fields []field) bool {
	for _, f := range fields {
		if strings.HasPrefix(f.name, "resent-") {
			return true
		}
	}
	return false
}

// checkResentLayout refuses Resent- fields that are not one block at the
// top of the header: every Resent- field must be in one unbroken run, and
// only trace fields (Return-Path:, Received:) may come before it. The
// recipients and the From:/Sender: rules of a resent message then come
// from the same block; with a split block a client could have the rules
// judge one run while the recipients came from another.
func checkResentLayout(fields []field) error {
	start := -1
	for i, f := range fields {
		if strings.HasPrefix(f.name, "resent-") {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	for _, f := range fields[:start] {
		if f.name != "received" && f.name != "return-path" {
			return reject(ReasonSplitResent, "the Resent- fields must come first in the header (after trace fields only)")
		}
	}
	end := start
	for end < len(fields) && strings.HasPrefix(fields[end].name, "resent-") {
		end++
	}
	for _, f := range fields[end:] {
		if strings.HasPrefix(f.name, "resent-") {
			return reject(ReasonSplitResent, "the Resent- fields must form one block, with no other field among them")
		}
	}
	return nil
}

// recipients collects the recipients of the message.
func recipients(fields []field, resent bool, opt Options) ([]string, error) {
	var rcpts []string
	seen := make(map[string]bool)
	for _, f := range fields {
		switch f.name {
		case "to", "cc", "bcc":
			if resent {
				continue
			}
		case "resent-to", "resent-cc", "resent-bcc":
			if !resent {
				continue
			}
		default:
			continue
		}
		addrs, err := fieldAddresses(f, opt.MaxAddressTokens)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			c, err := address.Parse(a)
			if err != nil {
				var ae *address.Error
				if errors.As(err, &ae) {
					return nil, reject(ReasonBadRecipient, "%s: recipient %s refused: %s", fieldName(f.name), ae.Input, ae.Reason)
				}
				return nil, reject(ReasonBadRecipient, "%s: recipient %s refused", fieldName(f.name), address.Quote(a))
			}
			if seen[c] {
				continue
			}
			seen[c] = true
			rcpts = append(rcpts, c)
			if len(rcpts) > opt.MaxRecipients {
				return nil, reject(ReasonTooManyRecipients, "too many recipients (at most %d)", opt.MaxRecipients)
			}
		}
	}
	if len(rcpts) == 0 {
		if resent {
			return nil, reject(ReasonNoRecipients, "no recipients: the message has Resent- fields but no address in Resent-To:, Resent-Cc: or Resent-Bcc:")
		}
		return nil, reject(ReasonNoRecipients, "no recipients: no address in To:, Cc: or Bcc:")
	}
	return rcpts, nil
}

// addressParser is net/mail's parser with a word decoder that accepts any
// charset: we never use display names, and the default decoder fails the
// whole list on an encoded-word in a charset it does not know.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// fieldAddresses returns the addr-specs in an address-list field (local
// part unquoted, as net/mail gives it). A field of only white space has
// none.
func fieldAddresses(f field, maxTokens int) ([]string, error) {
	list, err := fieldMailboxes(f, maxTokens)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, len(list))
	for i, a := range list {
		addrs[i] = a.Address
	}
	return addrs, nil
}

// fieldMailboxes returns the mailboxes in an address-list field: the
// addr-spec and the display name (or, for "addr (comment)", the comment),
// encoded-words decoded. A field of only white space has none. The field
// is scanned first, so net/mail only ever sees a bounded, balanced value
// without domain literals.
func fieldMailboxes(f field, maxTokens int) ([]*mail.Address, error) {
	v := f.unfolded()
	switch scanAddressField(v, maxTokens) {
	case scanTooMany:
		return nil, reject(ReasonAddressTokens, "%s: more than %d address tokens", fieldName(f.name), maxTokens)
	case scanUnbalanced:
		return nil, reject(ReasonBadRecipient, "%s: unbalanced quotes, comment or brackets", fieldName(f.name))
	case scanLiteral:
		return nil, reject(ReasonBadRecipient, "%s: address literals ([...]) are not accepted", fieldName(f.name))
	}
	if strings.Trim(v, " \t") == "" {
		return nil, nil
	}
	list, err := addressParser.ParseList(v)
	if err != nil {
		return nil, reject(ReasonBadRecipient, "%s: cannot parse %s", fieldName(f.name), address.Quote(strings.TrimSpace(v)))
	}
	return list, nil
}

type scanResult int

const (
	scanOK scanResult = iota
	scanTooMany
	scanUnbalanced
	scanLiteral
)

// isSpecial reports whether c is an RFC 5322 §3.2.3 special, white space,
// or starts a quoted string or comment: anything that ends an atom.
func isSpecial(c byte) bool {
	return strings.IndexByte("()<>[]:;@\\,.\" \t", c) >= 0
}

// skipPast returns the index just after the first c in v[i:] that no
// backslash escapes (the end of a quoted string or a domain literal), and
// false when there is none.
func skipPast(v string, i int, c byte) (int, bool) {
	for i < len(v) {
		if v[i] == '\\' {
			i += 2
			continue
		}
		i++
		if v[i-1] == c {
			return i, true
		}
	}
	return i, false
}

// scanAddressField counts the tokens of an unfolded address field in one
// linear pass, in the manner of Postfix's tok822: every word or quoted
// string is one token, every special is one, every opening parenthesis
// (nested or not) is one. It stops as soon as the count passes limit. It
// also reports unbalanced quotes, comments and brackets, and domain
// literals, none of which net/mail then needs to see.
func scanAddressField(v string, limit int) scanResult {
	n := 0
	literal := false
	for i := 0; i < len(v); {
		if n > limit {
			return scanTooMany
		}
		c := v[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '"' || c == '[': // a quoted string or a domain literal
			closer := byte('"')
			if c == '[' {
				literal, closer = true, ']'
			}
			n++
			end, ok := skipPast(v, i+1, closer)
			if !ok {
				return scanUnbalanced
			}
			i = end
		case c == '(':
			depth := 0
			for {
				if i >= len(v) {
					return scanUnbalanced
				}
				switch v[i] {
				case '\\':
					i++
				case '(':
					depth++
					n++
					if n > limit {
						return scanTooMany
					}
				case ')':
					depth--
				}
				i++
				if depth == 0 {
					break
				}
			}
		case c == ')' || c == ']':
			return scanUnbalanced
		case isSpecial(c):
			n++
			i++
		default:
			n++
			for i < len(v) && !isSpecial(v[i]) {
				i++
			}
		}
	}
	if n > limit {
		return scanTooMany
	}
	if literal {
		return scanLiteral
	}
	return scanOK
}
