package message

import (
	"errors"
	"fmt"
	"strings"

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
// Sender:) or of its current resent block (Resent-From: and
// Resent-Sender:); froms and senders index those fields, with at most one
// in froms. fromMine: the from field is absent, or parses and names only
// the user's addresses. keepSender: there is exactly one sender field and
// it names exactly one of the user's addresses. Under the Reject policy a
// from that is not the user's, or a sender field that is not kept, is
// refused; too many address tokens are refused under any policy.
func senderRules(fields []field, froms, senders []int, mine []string, opt Options, fromName, senderName string) (fromMine, keepSender bool, err error) {
	fromMine = true
	if len(froms) == 1 {
		addrs, err := fieldAddresses(fields[froms[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return false, false, rj
		}
		fromMine = err == nil && len(addrs) > 0 && allMine(addrs, mine)
	}
	if len(senders) == 1 {
		addrs, err := fieldAddresses(fields[senders[0]], opt.MaxAddressTokens)
		if rj, ok := err.(*Rejection); ok && rj.Reason == ReasonAddressTokens {
			return false, false, rj
		}
		keepSender = err == nil && len(addrs) == 1 && allMine(addrs, mine)
	}
	if opt.Sender == Reject {
		if !fromMine {
			return false, false, reject(ReasonFromNotYours, "%s: must name only your own addresses", fromName)
		}
		if len(senders) > 0 && !keepSender {
			return false, false, reject(ReasonSenderNotYours, "%s: must name exactly one of your addresses", senderName)
		}
	}
	return fromMine, keepSender, nil
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
	fromMine, keepSender, err := senderRules(fields, froms, senders, mine, opt, "Resent-From", "Resent-Sender")
	if err != nil {
		return rb, err
	}
	for _, i := range senders {
		if !keepSender {
			rb.drop[i] = true
		}
	}
	rb.addSender = !keepSender && (!fromMine || len(rb.drop) > 0)
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
