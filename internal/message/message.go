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
// SourceReader serves the code that copies a whole message (the mpp
// client, its queue, the maildir backend): it tells a failing source
// from a failing destination.
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
//     mailboxes are not all the user's, or which cannot be parsed, is
//     refused under the Reject policy; under AddSender it is kept and
//     exactly one truthful Sender: is delivered. A mailbox is the user's
//     when its address is (address.Equal, which ignores case) and its
//     display name or comment holds no other address (a word with an at
//     sign): readers show the name, so "ceo@corp.example" <alice@...> is
//     a forgery too. A single client Sender: naming exactly one of the
//     user's mailboxes is kept, any other client Sender: is removed, and
//     "Sender: <primary>" is added when From: is not the user's, names
//     more than one mailbox (RFC 5322 §3.6.2 requires a Sender: then), or
//     a Sender: was removed.
//     Under the Reject policy a client Sender: that is not exactly one of
//     the user's addresses is refused too (sender-not-yours).
//   - The same rules hold for a resent message (RFC 5322 §3.6.6), applied
//     to its resent block. The Resent- fields must be one unbroken run at
//     the top of the header, after trace fields (Return-Path:, Received:)
//     only; anything else is refused (split-resent), so the recipients and
//     the From:/Sender: rules always come from the same block. (Older
//     resent blocks, below the current one, are refused with it: a
//     submission client makes one block, and a reader cannot tell which
//     of several is the current one.) In that block
//     more than one Resent-From: is refused (multiple-from); a missing
//     Resent-From: gets the user's primary address; a Resent-From: that is
//     not the user's is refused under Reject (from-not-yours) or gets a
//     truthful "Resent-Sender: <primary>" under AddSender (as does one
//     naming several mailboxes, under either policy), and a client
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
	"fmt"
)

// Default limits (mppd.conf(5) lists them; the anchors are beside each).
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
	// ReasonSplitResent: the Resent- fields are not one unbroken block at
	// the top of the header (only Return-Path: and Received: before it).
	ReasonSplitResent = "split-resent"
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
