package message

import (
	"time"
)

// Prepare checks and rewrites the header block of one message for
// delivery.
//
// header is the header block as received after dot-unstuffing, with LF line
// endings, up to and including the empty line that ends it, or the whole
// message when it has no empty line (see HeaderLength). The caller has
// already enforced the header-size limit.
//
// The rules are applied in this order, and the first that fails decides:
// header syntax (bad-header), Resent- fields that are not one block at the
// top (split-resent), more than one From: (multiple-from), too many
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
	if err := checkResentLayout(fields); err != nil {
		return Result{}, err
	}

	var (
		froms, senders []int
		received       int
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
	}
	resent := hasResent(fields)
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

	// The resent block gets the From:/Sender: rules (senderRules).
	var rb resentBlock
	if resent {
		if rb, err = checkResentBlock(fields, mine, opt); err != nil {
			return Result{}, err
		}
	}

	fromMine, keepSender, multiFrom, err := senderRules(fields, froms, senders, mine, opt, "From", "Sender")
	if err != nil {
		return Result{}, err
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
	if !keepSender && (!fromMine || multiFrom || removedSender) {
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
