package message

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"

	"github.com/mppd/mppd/internal/address"
)

// SenderPolicy says what happens to a message whose From: names someone
// other than the authenticated user. It is message.sender_policy in
// mppd.conf, written as its String ("add-sender", "reject").
type SenderPolicy int

const (
	// AddSender keeps the From: and delivers exactly one Sender: naming
	// the authenticated user (RFC 5322 §3.6.2), replacing any Sender: the
	// client wrote that is not the user's.
	AddSender SenderPolicy = iota
	// Reject refuses the message with 550 (from-not-yours,
	// sender-not-yours).
	Reject
)

// String returns the policy's name in mppd.conf.
func (p SenderPolicy) String() string {
	if p == Reject {
		return "reject"
	}
	return "add-sender"
}

// MarshalText writes the policy's name.
func (p SenderPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a policy's name.
func (p *SenderPolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "add-sender":
		*p = AddSender
	case "reject":
		*p = Reject
	default:
		return fmt.Errorf("%q is not one of add-sender, reject", b)
	}
	return nil
}

// senderRules judges the originator fields of a message (From: and
// Sender:) or of its resent block (Resent-From: and Resent-Sender:); froms
// and senders index those fields, with at most one in froms.
//
// fromMine: the from field is absent, or parses and names only the user's
// mailboxes (mailboxMine: the address is the user's and the display name
// holds no other address). keepSender: there is exactly one sender field
// and it names exactly one of the user's mailboxes. multiFrom: the from
// field names more than one mailbox, which RFC 5322 §3.6.2 says needs a
// sender field. Under the Reject policy a from that is not the user's, or a
// sender field that is not kept, is refused; too many address tokens are
// refused under any policy.
func senderRules(fields []field, froms, senders []int, mine []string, opt Options, fromName, senderName string) (fromMine, keepSender, multiFrom bool, err error) {
	fromMine = true
	if len(froms) == 1 {
		list, err := fieldMailboxes(fields[froms[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return false, false, false, rj
		}
		fromMine = err == nil && len(list) > 0 && allMine(list, mine)
		multiFrom = len(list) > 1
	}
	if len(senders) == 1 {
		list, err := fieldMailboxes(fields[senders[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return false, false, false, rj
		}
		keepSender = err == nil && len(list) == 1 && allMine(list, mine)
	}
	if opt.Sender == Reject {
		if !fromMine {
			return false, false, false, reject(ReasonFromNotYours, "%s: must name only your own addresses", fromName)
		}
		if len(senders) > 0 && !keepSender {
			return false, false, false, reject(ReasonSenderNotYours, "%s: must name exactly one of your addresses", senderName)
		}
	}
	return fromMine, keepSender, multiFrom, nil
}

// resentBlock is what Prepare must do to the current resent block.
type resentBlock struct {
	start     int          // index of its first field
	hasFrom   bool         // it has a Resent-From:
	addSender bool         // add "Resent-Sender: <primary>"
	drop      map[int]bool // client Resent-Sender: fields to remove
}

// checkResentBlock applies the From:/Sender: rules to the resent block
// (see the package comment). fields holds at least one Resent- field, and
// checkResentLayout has made sure they are one block.
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
	fromMine, keepSender, multiFrom, err := senderRules(fields, froms, senders, mine, opt, "Resent-From", "Resent-Sender")
	if err != nil {
		return rb, err
	}
	for _, i := range senders {
		if !keepSender {
			rb.drop[i] = true
		}
	}
	rb.addSender = !keepSender && (!fromMine || multiFrom || len(rb.drop) > 0)
	return rb, nil
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

// allMine reports whether every mailbox in list is one of the user's.
func allMine(list []*mail.Address, mine []string) bool {
	for _, a := range list {
		if !mailboxMine(a, mine) {
			return false
		}
	}
	return true
}

// mailboxMine reports whether a is one of the user's mailboxes: its address
// is one of mine, and its display name (or comment) holds no address but
// one of mine. A reader sees the name first, so
// "ceo@corp.example" <alice@example.com> is as much a forgery as a From:
// naming ceo@corp.example. Any word of the name with an at sign in it (the
// ASCII one, or the full-width or small forms a reader would take for it)
// counts as an address.
func mailboxMine(a *mail.Address, mine []string) bool {
	if !isMine(a.Address, mine) {
		return false
	}
	for _, word := range strings.FieldsFunc(a.Name, nameSeparator) {
		if strings.ContainsAny(word, atSigns) && !isMine(word, mine) {
			return false
		}
	}
	return true
}

// atSigns are the characters a reader takes for an at sign.
const atSigns = "@\uff20\ufe6b"

// nameSeparator splits a display name into words: white space, and the
// punctuation around an address in prose or in angle brackets.
func nameSeparator(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("<>()[]\"',;:", r)
}

func isMine(addr string, mine []string) bool {
	for _, m := range mine {
		if address.Equal(addr, m) {
			return true
		}
	}
	return false
}
