// Package message does to a submitted message's header block what a
// submission server must (RFC 6409 §8) and what MPP exists for (RFC 1204
// §1, "preventing mail forgery"): it finds the recipients, drops Bcc:, makes
// From:/Sender: truthful for the authenticated user, refuses mail loops,
// and adds the trace and identification fields a message lacks.
//
// It is pure: no network, no files, no logging. The engine calls Prepare
// once per message, after the text has been received and the header-size
// limit enforced, and delivers Result.Header followed by the body, which
// this package never sees.
//
// Decisions (mppd(8) documents them):
//
//   - The header block is parsed strictly. Every line is a field
//     "name:value" whose name is printable ASCII other than ':' (RFC 5322
//     §2.2), or a continuation line starting with SP or HTAB. A message
//     whose first line is a continuation, with a line that is not a field
//     (such as a body that starts without the empty line, or an mbox
//     "From " line), a space before the colon ("Bcc : x", the obsolete
//     syntax of RFC 5322 §4.5), a continuation line made only of white
//     space, or a NUL or bare CR anywhere in the header, is refused
//     (bad-header). Other MTAs disagree on such lines; refusing them means
//     no later parser can see a header we did not.
//   - Recipients are the addresses of To:, Cc: and Bcc: or, when any
//     Resent-* field is present, of Resent-To:, Resent-Cc: and Resent-Bcc:
//     only, as sendmail -t and Postfix's cleanup do (RFC 5322 §3.6.6).
//     Every one must be a valid mailbox for package address; an address
//     without a domain is refused rather than qualified with a local
//     domain, and so is an address literal. A quoted local part is
//     accepted only when its content is itself a valid dot-atom
//     ("abc"@x is abc@x). Duplicates (same local part, same domain ignoring
//     case) are dropped, and the order of first appearance is kept.
//   - Before any address field reaches net/mail its tokens are counted
//     (quoted strings and words one each, every special and every
//     opening parenthesis one each), and more than MaxAddressTokens in one
//     field is refused (Postfix header_address_token_limit). Unbalanced
//     quotes or comments and domain literals are caught by the same linear
//     scan, so a pathological field costs microseconds.
//   - Bcc: and Resent-Bcc: are removed, every occurrence, with their
//     continuation lines.
//   - Anti-forgery: more than one From: is refused (RFC 5322 §3.6 allows
//     one). A missing From: gets the user's primary address. A From: whose
//     addresses are not all the user's (address.Equal, which ignores case),
//     or which cannot be parsed, is refused under the Reject policy; under
//     AddSender it is kept and exactly one truthful Sender: is delivered:
//     a single client Sender: naming exactly one of the user's addresses is
//     kept, any other client Sender: is removed, and "Sender: <primary>"
//     is added when From: is not the user's or a Sender: was removed.
//     Under the Reject policy a client Sender: that is not exactly one of
//     the user's addresses is refused too (sender-not-yours).
//   - The same rules hold for a resent message (RFC 5322 §3.6.6), applied
//     to the current resent block: the run of Resent- fields that starts
//     with the first one (each reintroduction prepends its block, so the
//     blocks below it are history and are passed through). In that block
//     more than one Resent-From: is refused (multiple-from); a missing
//     Resent-From: gets the user's primary address; a Resent-From: that is
//     not the user's is refused under Reject (from-not-yours) or gets a
//     truthful "Resent-Sender: <primary>" under AddSender, and a client
//     Resent-Sender: in the block that is not exactly one of the user's
//     addresses is removed (or refused under Reject, sender-not-yours).
//     Added Resent- fields go at the top of the block, so it stays one run.
//   - More than MaxReceived Received: fields is a mail loop (Postfix
//     hopcount_limit), refused.
//   - A Received: field is prepended (RFC 5321 §4.4; there is no HELO, so the "from" clause is the client's address literal,
//     or absent when ReceivedClientAddress is off); Date: and Message-ID:
//     are added at the end of the header when absent (RFC 6409 §8.2, §8.3).
//     Duplicate Date: or Message-ID: fields are passed through as they are
//     (nothing is added then): they are malformed but harmless, and
//     refusing them would only break sloppy clients.
//   - Every other field is passed through byte for byte, in order. Added
//     From:, Sender:, Date: and Message-ID: go after the client's fields.
//     The result always ends with the empty line, even when the message
//     had no body.
//   - Values mppd writes come from the server (host name, login, session
//     id, client address, the backend's addresses), but they are checked
//     or escaped all the same so that no control byte reaches a generated
//     field: the host name and the primary address must be valid (else
//     Prepare fails with a server error, not a Rejection), the login and
//     session id are escaped, the client address is re-formatted from its
//     parsed form.
package message

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/address"
)

// SenderPolicy says what happens to a message whose From: names someone
// other than the authenticated user. It mirrors protocol.SenderPolicy; the
// engine maps one to the other.
type SenderPolicy int

const (
	// AddSender keeps the From: and delivers exactly one Sender: naming
	// the authenticated user (RFC 5322 §3.6.2).
	AddSender SenderPolicy = iota
	// Reject refuses the message (from-not-yours, sender-not-yours).
	Reject
)

// Default limits (see ../../shared/notes/limits-and-bad-input.md).
const (
	DefaultMaxRecipients    = 100    // chasquid; RFC 5321 §4.5.3.1.8 minimum
	DefaultMaxReceived      = 50     // Postfix hopcount_limit
	DefaultMaxAddressTokens = 10_240 // Postfix header_address_token_limit
)

// Options is the server's configuration for Prepare. A limit of zero or
// less means its default.
type Options struct {
	// Hostname names this server in Received: and Message-ID:. It must
	// be a host name: LDH labels (underscores tolerated), at most 253
	// octets; a trailing dot is dropped and it is lower-cased.
	Hostname string
	// MaxRecipients is the most distinct recipients a message may have.
	MaxRecipients int
	// MaxReceived is the most Received: fields a message may carry.
	MaxReceived int
	// MaxAddressTokens is the most tokens one address field may hold.
	MaxAddressTokens int
	// Sender is the anti-forgery policy.
	Sender SenderPolicy
	// ReceivedClientAddress puts the client's IP address in Received:.
	ReceivedClientAddress bool
}

// DefaultOptions returns the defaults for everything but Hostname.
func DefaultOptions() Options {
	return Options{
		MaxRecipients:         DefaultMaxRecipients,
		MaxReceived:           DefaultMaxReceived,
		MaxAddressTokens:      DefaultMaxAddressTokens,
		Sender:                AddSender,
		ReceivedClientAddress: true,
	}
}

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

// Result is a prepared message header.
type Result struct {
	// Recipients are the distinct recipients in canonical form
	// (address.Parse), in order of first appearance; never empty.
	Recipients []string
	// Header is the header block to deliver, ending with the empty line;
	// the body follows it unchanged.
	Header []byte
	// Added and Removed name the fields Prepare added and removed, in
	// order, for the log ("Received", "Date"; "Bcc", "Sender").
	Added, Removed []string
}

// Rejection reasons: stable words for logs. Each one means the message is
// refused with 550 and nothing is delivered.
const (
	// ReasonBadHeader: the header block is not a sequence of well-formed
	// fields (see the package comment), or contains NUL or a bare CR.
	ReasonBadHeader = "bad-header"
	// ReasonNoRecipients: the recipient fields name no address at all.
	ReasonNoRecipients = "no-recipients"
	// ReasonTooManyRecipients: more than Options.MaxRecipients distinct
	// recipients.
	ReasonTooManyRecipients = "too-many-recipients"
	// ReasonBadRecipient: a recipient field cannot be parsed, or one of
	// its addresses is not valid for package address.
	ReasonBadRecipient = "bad-recipient"
	// ReasonMultipleFrom: more than one From: field.
	ReasonMultipleFrom = "multiple-from"
	// ReasonFromNotYours: Reject policy, and From: is not all the user's
	// addresses (or cannot be parsed).
	ReasonFromNotYours = "from-not-yours"
	// ReasonSenderNotYours: Reject policy, and the client's Sender: fields
	// are not exactly one field naming exactly one of the user's
	// addresses.
	ReasonSenderNotYours = "sender-not-yours"
	// ReasonMailLoop: more than Options.MaxReceived Received: fields.
	ReasonMailLoop = "mail-loop"
	// ReasonAddressTokens: an address field (To, Cc, Bcc, their Resent-
	// forms, From, Sender) has more than Options.MaxAddressTokens tokens.
	ReasonAddressTokens = "address-tokens"
)

// Rejection is a refusal of the message because of what the client sent.
// The engine answers 550 with Text and logs Reason.
type Rejection struct {
	// Reason is one of the Reason constants.
	Reason string
	// Text is a short explanation for the 550 reply. Client input in it
	// is always quoted and escaped by address.Quote, so it holds no
	// control byte and no more than 64 octets of any client value.
	Text string
}

func (r *Rejection) Error() string { return "message rejected (" + r.Reason + "): " + r.Text }

func reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Text: fmt.Sprintf(format, args...)}
}

// HeaderLength returns how much of msg is its header block: up to and
// including the empty line that ends it, and true; or len(msg) and false
// when msg has no empty line, in which case all of it is header and the
// body is empty. msg has LF line endings.
func HeaderLength(msg []byte) (int, bool) {
	if len(msg) > 0 && msg[0] == '\n' {
		return 1, true
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return i + 2, true
	}
	return len(msg), false
}

// field is one header field as received.
type field struct {
	raw   []byte // all its lines, each ending in '\n' except perhaps the last of the block
	name  string // lower-cased
	value []byte // after the colon, lines still folded
}

// unfolded returns the value with its line breaks removed (RFC 5322
// §2.2.3); continuation lines start with white space, which stays.
func (f field) unfolded() string {
	return strings.ReplaceAll(string(f.value), "\n", "")
}

// parseFields splits a header block into fields. A non-nil *Rejection means
// the client sent something malformed; a plain error means the caller
// passed more than a header block.
func parseFields(h []byte) ([]field, error) {
	var fields []field
	lineNo := 0
	for len(h) > 0 {
		lineNo++
		end := bytes.IndexByte(h, '\n')
		var line []byte
		if end < 0 {
			line, h = h, nil
		} else {
			line, h = h[:end+1], h[end+1:]
		}
		content := bytes.TrimSuffix(line, []byte("\n"))
		if len(content) == 0 {
			if len(h) > 0 {
				return nil, errors.New("message: header block continues after its empty line")
			}
			break
		}
		if i := bytes.IndexAny(content, "\x00\r"); i >= 0 {
			return nil, reject(ReasonBadHeader, "header line %d contains a NUL or bare CR", lineNo)
		}
		if content[0] == ' ' || content[0] == '\t' {
			if len(fields) == 0 {
				return nil, reject(ReasonBadHeader, "header line %d is a continuation line with no field before it", lineNo)
			}
			if len(bytes.Trim(content, " \t")) == 0 {
				return nil, reject(ReasonBadHeader, "header line %d is only white space", lineNo)
			}
			f := &fields[len(fields)-1]
			f.raw = f.raw[:len(f.raw)+len(line)] // lines are contiguous in h
			f.value = f.value[:len(f.value)+len(line)]
			continue
		}
		colon := bytes.IndexByte(content, ':')
		if colon <= 0 {
			return nil, reject(ReasonBadHeader, "header line %d is not a header field", lineNo)
		}
		for _, c := range content[:colon] {
			if c < 33 || c > 126 {
				return nil, reject(ReasonBadHeader, "header line %d has a field name with a space, control or non-ASCII byte", lineNo)
			}
		}
		fields = append(fields, field{
			raw:   line,
			name:  strings.ToLower(string(content[:colon])),
			value: line[colon+1:],
		})
	}
	// value must not include the final line break: the value of a field
	// is everything up to, not including, its CRLF.
	for i := range fields {
		fields[i].value = bytes.TrimSuffix(fields[i].value, []byte("\n"))
	}
	return fields, nil
}

// Prepare checks and rewrites the header block of one message for
// delivery.
//
// header is the header block as received after dot-unstuffing, with LF line
// endings, up to and including the empty line that ends it, or the whole
// message when it has no empty line (see HeaderLength). The caller has
// already enforced the header-size limit.
//
// The rules are applied in this order, and the first that fails decides:
// header syntax (bad-header), more than one From: (multiple-from), too many
// Received: (mail-loop), the recipient fields (address-tokens,
// bad-recipient, too-many-recipients, no-recipients), then From: and
// Sender: (address-tokens, from-not-yours, sender-not-yours).
//
// A *Rejection error means the client's message is refused (550). Any other
// error is the server's fault (invalid Options.Hostname, an invalid primary
// address in tr, or header holding more than a header block) and should be
// answered as a local error (451).
func Prepare(header []byte, tr Trace, opt Options) (Result, error) {
	opt = withDefaults(opt)
	if tr.Time.IsZero() {
		tr.Time = time.Now() // once, so Received: and Date: agree
	}
	host, err := checkHostname(opt.Hostname)
	if err != nil {
		return Result{}, err
	}
	mine, err := userAddresses(tr.Addresses)
	if err != nil {
		return Result{}, err
	}

	fields, err := parseFields(header)
	if err != nil {
		return Result{}, err
	}

	var (
		froms, senders []int
		received       int
		resent         bool
		hasDate, hasID bool
	)
	for i, f := range fields {
		switch f.name {
		case "from":
			froms = append(froms, i)
		case "sender":
			senders = append(senders, i)
		case "received":
			received++
		case "date":
			hasDate = true
		case "message-id":
			hasID = true
		}
		if strings.HasPrefix(f.name, "resent-") {
			resent = true
		}
	}
	if len(froms) > 1 {
		return Result{}, reject(ReasonMultipleFrom, "the message has %d From: fields; one is allowed", len(froms))
	}
	if received > opt.MaxReceived {
		return Result{}, reject(ReasonMailLoop, "too many Received: fields (%d, at most %d): mail loop", received, opt.MaxReceived)
	}

	rcpts, err := recipients(fields, resent, opt)
	if err != nil {
		return Result{}, err
	}

	// The current resent block, checked like From:/Sender: below.
	var rb resentBlock
	if resent {
		if rb, err = checkResentBlock(fields, mine, opt); err != nil {
			return Result{}, err
		}
	}

	// From: is the user's when it parses and every address in it is one
	// of theirs. An unparseable From: is treated as not theirs.
	fromMine := true
	if len(froms) == 1 {
		addrs, err := fieldAddresses(fields[froms[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return Result{}, rj
		}
		fromMine = err == nil && len(addrs) > 0 && allMine(addrs, mine)
	}
	// A client Sender: is kept only when it is the only one and names
	// exactly one of the user's addresses.
	keepSender := false
	if len(senders) == 1 {
		addrs, err := fieldAddresses(fields[senders[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return Result{}, rj
		}
		keepSender = err == nil && len(addrs) == 1 && allMine(addrs, mine)
	}
	if opt.Sender == Reject {
		if !fromMine {
			return Result{}, reject(ReasonFromNotYours, "From: must name only your own addresses")
		}
		if len(senders) > 0 && !keepSender {
			return Result{}, reject(ReasonSenderNotYours, "Sender: must name exactly one of your addresses")
		}
	}

	var res Result
	res.Recipients = rcpts
	out := make([]byte, 0, len(header)+600)
	out = appendReceived(out, host, tr, opt)
	res.Added = append(res.Added, "Received")
	removedSender := false
	for i, f := range fields {
		if resent && i == rb.start {
			// What mppd adds to the current resent block goes at its top.
			if !rb.hasFrom {
				out = append(out, "Resent-From: "+mine[0]+"\n"...)
				res.Added = append(res.Added, "Resent-From")
			}
			if rb.addSender {
				out = append(out, "Resent-Sender: "+mine[0]+"\n"...)
				res.Added = append(res.Added, "Resent-Sender")
			}
		}
		switch {
		case f.name == "bcc" || f.name == "resent-bcc":
			res.Removed = append(res.Removed, fieldName(f.name))
			continue
		case f.name == "sender" && !(keepSender && i == senders[0]):
			res.Removed = append(res.Removed, "Sender")
			removedSender = true
			continue
		}
		if rb.drop[i] {
			res.Removed = append(res.Removed, "Resent-Sender")
			continue
		}
		out = append(out, f.raw...)
		if out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	if len(froms) == 0 {
		out = append(out, "From: "+mine[0]+"\n"...)
		res.Added = append(res.Added, "From")
	}
	if !keepSender && (!fromMine || removedSender) {
		out = append(out, "Sender: "+mine[0]+"\n"...)
		res.Added = append(res.Added, "Sender")
	}
	if !hasDate {
		out = append(out, "Date: "+formatDate(tr.Time)+"\n"...)
		res.Added = append(res.Added, "Date")
	}
	if !hasID {
		out = append(out, "Message-ID: "+newMessageID(host)+"\n"...)
		res.Added = append(res.Added, "Message-ID")
	}
	res.Header = append(out, '\n')
	return res, nil
}

// resentBlock is what Prepare must do to the current resent block.
type resentBlock struct {
	start     int          // index of its first field
	hasFrom   bool         // it has a Resent-From:
	addSender bool         // add "Resent-Sender: <primary>"
	drop      map[int]bool // client Resent-Sender: fields to remove
}

// checkResentBlock applies the From:/Sender: rules to the current resent
// block (see the package comment). fields holds at least one Resent- field.
func checkResentBlock(fields []field, mine []string, opt Options) (resentBlock, error) {
	rb := resentBlock{drop: map[int]bool{}}
	for rb.start = 0; !strings.HasPrefix(fields[rb.start].name, "resent-"); rb.start++ {
	}
	var froms, senders []int
	for i := rb.start; i < len(fields) && strings.HasPrefix(fields[i].name, "resent-"); i++ {
		switch fields[i].name {
		case "resent-from":
			froms = append(froms, i)
		case "resent-sender":
			senders = append(senders, i)
		}
	}
	if len(froms) > 1 {
		return rb, reject(ReasonMultipleFrom, "the current resent block has %d Resent-From: fields; one is allowed", len(froms))
	}
	rb.hasFrom = len(froms) == 1
	fromMine := true
	if rb.hasFrom {
		addrs, err := fieldAddresses(fields[froms[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return rb, rj
		}
		fromMine = err == nil && len(addrs) > 0 && allMine(addrs, mine)
	}
	keepSender := false
	if len(senders) == 1 {
		addrs, err := fieldAddresses(fields[senders[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return rb, rj
		}
		keepSender = err == nil && len(addrs) == 1 && allMine(addrs, mine)
	}
	if opt.Sender == Reject {
		if !fromMine {
			return rb, reject(ReasonFromNotYours, "Resent-From: must name only your own addresses")
		}
		if len(senders) > 0 && !keepSender {
			return rb, reject(ReasonSenderNotYours, "Resent-Sender: must name exactly one of your addresses")
		}
	}
	for _, i := range senders {
		if !keepSender {
			rb.drop[i] = true
		}
	}
	rb.addSender = !keepSender && (!fromMine || len(rb.drop) > 0)
	return rb, nil
}

func withDefaults(opt Options) Options {
	if opt.MaxRecipients <= 0 {
		opt.MaxRecipients = DefaultMaxRecipients
	}
	if opt.MaxReceived <= 0 {
		opt.MaxReceived = DefaultMaxReceived
	}
	if opt.MaxAddressTokens <= 0 {
		opt.MaxAddressTokens = DefaultMaxAddressTokens
	}
	return opt
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

// userAddresses returns the canonical forms of the user's valid addresses,
// the primary first.
func userAddresses(addrs []string) ([]string, error) {
	if len(addrs) == 0 {
		return nil, errors.New("message: Trace.Addresses is empty")
	}
	primary, err := address.Parse(addrs[0])
	if err != nil {
		return nil, fmt.Errorf("message: the user's primary address: %w", err)
	}
	mine := []string{primary}
	for _, a := range addrs[1:] {
		if c, err := address.Parse(a); err == nil {
			mine = append(mine, c)
		}
	}
	return mine, nil
}

func allMine(addrs, mine []string) bool {
	for _, a := range addrs {
		ok := false
		for _, m := range mine {
			if address.Equal(a, m) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// fieldName gives the canonical spelling of the field names this package
// names in texts and logs.
func fieldName(lower string) string {
	switch lower {
	case "to":
		return "To"
	case "cc":
		return "Cc"
	case "bcc":
		return "Bcc"
	case "resent-to":
		return "Resent-To"
	case "resent-cc":
		return "Resent-Cc"
	case "resent-bcc":
		return "Resent-Bcc"
	case "from":
		return "From"
	case "sender":
		return "Sender"
	}
	return "?"
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
// none. The field is scanned first, so net/mail only ever sees a bounded,
// balanced value without domain literals.
func fieldAddresses(f field, maxTokens int) ([]string, error) {
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
	addrs := make([]string, len(list))
	for i, a := range list {
		addrs[i] = a.Address
	}
	return addrs, nil
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
		case c == '"':
			n++
			i++
			for {
				if i >= len(v) {
					return scanUnbalanced
				}
				if v[i] == '\\' {
					i += 2
					continue
				}
				i++
				if v[i-1] == '"' {
					break
				}
			}
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
		case c == '[':
			literal = true
			n++
			i++
			for {
				if i >= len(v) {
					return scanUnbalanced
				}
				if v[i] == '\\' {
					i += 2
					continue
				}
				i++
				if v[i-1] == ']' {
					break
				}
			}
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
