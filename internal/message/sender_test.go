package message

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestFromAndSender covers the anti-forgery rules and catalogue case 41.
func TestFromAndSender(t *testing.T) {
	const (
		addSender = "Sender: alice@example.com\n"
		addFrom   = "From: alice@example.com\n"
	)
	tests := []struct {
		name   string
		fields []string
		policy SenderPolicy
		reject string   // expected rejection reason, or ""
		from   []string // delivered From: fields (raw)
		sender []string // delivered Sender: fields (raw)
	}{
		{name: "missing From is added", fields: nil,
			from: []string{addFrom}},
		{name: "own From kept, no Sender", fields: []string{"From: Alice <alice@example.com>"},
			from: []string{"From: Alice <alice@example.com>\n"}},
		{name: "own From in other case", fields: []string{"From: ALICE@EXAMPLE.COM"},
			from: []string{"From: ALICE@EXAMPLE.COM\n"}},
		{name: "own alias", fields: []string{"From: a.smith@example.org"},
			from: []string{"From: a.smith@example.org\n"}},
		{name: "two own addresses", fields: []string{"From: alice@example.com, a.smith@example.org", "Sender: alice@example.com"},
			from: []string{"From: alice@example.com, a.smith@example.org\n"}, sender: []string{"Sender: alice@example.com\n"}},
		{name: "41 forged From gets Sender", fields: []string{"From: The CEO <ceo@corp.example>"},
			from: []string{"From: The CEO <ceo@corp.example>\n"}, sender: []string{addSender}},
		{name: "41 forged From rejected", fields: []string{"From: The CEO <ceo@corp.example>"}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "mixed From gets Sender", fields: []string{"From: alice@example.com, ceo@corp.example"},
			from: []string{"From: alice@example.com, ceo@corp.example\n"}, sender: []string{addSender}},
		{name: "unparseable From gets Sender", fields: []string{"From: <<<"},
			from: []string{"From: <<<\n"}, sender: []string{addSender}},
		{name: "From with literal gets Sender", fields: []string{"From: alice@[192.0.2.1]"},
			from: []string{"From: alice@[192.0.2.1]\n"}, sender: []string{addSender}},
		{name: "empty From gets Sender", fields: []string{"From:"},
			from: []string{"From:\n"}, sender: []string{addSender}},
		{name: "unparseable From rejected", fields: []string{"From: <<<"}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "two From fields", fields: []string{"From: alice@example.com", "From: alice@example.com"},
			reject: ReasonMultipleFrom},
		{name: "two From fields, Reject", fields: []string{"From: alice@example.com", "from: ceo@corp.example"}, policy: Reject,
			reject: ReasonMultipleFrom},
		{name: "own Sender kept with forged From", fields: []string{"From: ceo@corp.example", "Sender: Alice <a.smith@example.org>"},
			from: []string{"From: ceo@corp.example\n"}, sender: []string{"Sender: Alice <a.smith@example.org>\n"}},
		{name: "own Sender kept with own From", fields: []string{"From: alice@example.com", "Sender: alice@example.com"},
			from: []string{"From: alice@example.com\n"}, sender: []string{"Sender: alice@example.com\n"}},
		{name: "forged Sender replaced, own From", fields: []string{"From: alice@example.com", "Sender: ceo@corp.example"},
			from: []string{"From: alice@example.com\n"}, sender: []string{addSender}},
		{name: "forged Sender replaced, forged From", fields: []string{"From: ceo@corp.example", "Sender: cfo@corp.example"},
			from: []string{"From: ceo@corp.example\n"}, sender: []string{addSender}},
		{name: "two own Senders replaced by one", fields: []string{"From: ceo@corp.example", "Sender: alice@example.com", "Sender: a.smith@example.org"},
			from: []string{"From: ceo@corp.example\n"}, sender: []string{addSender}},
		{name: "Sender with two addresses replaced", fields: []string{"Sender: alice@example.com, a.smith@example.org"},
			from: []string{addFrom}, sender: []string{addSender}},
		{name: "folded forged Sender removed whole", fields: []string{"From: alice@example.com", "Sender: ceo@corp.example,", " cfo@corp.example"},
			from: []string{"From: alice@example.com\n"}, sender: []string{addSender}},
		{name: "forged Sender rejected", fields: []string{"From: alice@example.com", "Sender: ceo@corp.example"}, policy: Reject,
			reject: ReasonSenderNotYours},
		{name: "two Senders rejected", fields: []string{"From: alice@example.com", "Sender: alice@example.com", "Sender: alice@example.com"}, policy: Reject,
			reject: ReasonSenderNotYours},
		{name: "own Sender with Reject", fields: []string{"From: alice@example.com", "Sender: alice@example.com"}, policy: Reject,
			from: []string{"From: alice@example.com\n"}, sender: []string{"Sender: alice@example.com\n"}},
		{name: "missing From with Reject", fields: nil, policy: Reject,
			from: []string{addFrom}},
		// A display name (or comment) holding another address is a forgery.
		{name: "address in display name gets Sender", fields: []string{`From: "ceo@corp.example" <alice@example.com>`},
			from: []string{`From: "ceo@corp.example" <alice@example.com>` + "\n"}, sender: []string{addSender}},
		{name: "address in display name rejected", fields: []string{`From: "ceo@corp.example" <alice@example.com>`}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "address in comment rejected", fields: []string{"From: alice@example.com (ceo@corp.example)"}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "address in encoded display name rejected", fields: []string{"From: =?utf-8?q?ceo=40corp.example?= <alice@example.com>"}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "full-width at sign in display name rejected", fields: []string{"From: =?utf-8?b?Y2Vv77ygY29ycC5leGFtcGxl?= <alice@example.com>"}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "address among words of the name rejected", fields: []string{`From: "The CEO (ceo@corp.example)" <alice@example.com>`}, policy: Reject,
			reject: ReasonFromNotYours},
		{name: "own address in display name", fields: []string{`From: "A.Smith@example.org" <alice@example.com>`}, policy: Reject,
			from: []string{`From: "A.Smith@example.org" <alice@example.com>` + "\n"}},
		{name: "plain display name", fields: []string{`From: "Alice Liddell" <alice@example.com>`}, policy: Reject,
			from: []string{`From: "Alice Liddell" <alice@example.com>` + "\n"}},
		{name: "address in Sender display name replaced", fields: []string{"From: ceo@corp.example", `Sender: "cfo@corp.example" <alice@example.com>`},
			from: []string{"From: ceo@corp.example\n"}, sender: []string{addSender}},
		// Several From: mailboxes need a Sender: (RFC 5322 §3.6.2).
		{name: "two own addresses get Sender", fields: []string{"From: alice@example.com, a.smith@example.org"},
			from: []string{"From: alice@example.com, a.smith@example.org\n"}, sender: []string{addSender}},
		{name: "two own addresses get Sender under Reject", fields: []string{"From: alice@example.com, a.smith@example.org"}, policy: Reject,
			from: []string{"From: alice@example.com, a.smith@example.org\n"}, sender: []string{addSender}},
		{name: "two own addresses, forged Sender replaced", fields: []string{"From: alice@example.com, a.smith@example.org", "Sender: ceo@corp.example"},
			from: []string{"From: alice@example.com, a.smith@example.org\n"}, sender: []string{addSender}},
		{name: "Resent-From is checked, not From", fields: []string{"Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			from: []string{addFrom}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ok := prepareUnder(t, tt.policy, tt.reject, append(slices.Clone(tt.fields), "To: bob@example.com")...)
			if !ok {
				return
			}
			fs := mustParse(t, res.Header)
			if got := named(fs, "from"); fmt.Sprint(got) != fmt.Sprint(tt.from) {
				t.Errorf("From = %q, want %q", got, tt.from)
			}
			if got := named(fs, "sender"); fmt.Sprint(got) != fmt.Sprint(tt.sender) {
				t.Errorf("Sender = %q, want %q\n%s", got, tt.sender, res.Header)
			}
		})
	}
}

// prepareUnder prepares a message of fields under the sender policy. With
// reject set it wants that rejection and returns false; otherwise it wants
// the message prepared.
func prepareUnder(t *testing.T, policy SenderPolicy, reject string, fields ...string) (Result, bool) {
	t.Helper()
	o := testOptions()
	o.Sender = policy
	res, err := Prepare(hdr(fields...), testTrace(), o)
	if reject != "" {
		wantRejection(t, err, reject)
		return Result{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return res, true
}

// TestResentBlock: a resent message's block follows the From:/Sender:
// rules, and Resent- fields that are not one block at the top of the header
// (trace fields only before it) are refused.
func TestResentBlock(t *testing.T) {
	const (
		addFrom   = "Resent-From: alice@example.com\n"
		addSender = "Resent-Sender: alice@example.com\n"
	)
	tests := []struct {
		name   string
		fields []string
		policy SenderPolicy
		reject string
		want   []string // the delivered Resent-From/-Sender fields, in order
	}{
		{name: "own Resent-From, nothing added",
			fields: []string{"Resent-From: alice@example.com", "Resent-To: bob@example.com"},
			want:   []string{"Resent-From: alice@example.com\n"}},
		{name: "missing Resent-From added at the top of the block",
			fields: []string{"Resent-Bcc: carol@example.com", "Resent-To: bob@example.com"},
			want:   []string{addFrom}},
		{name: "forged Resent-From gets Resent-Sender",
			fields: []string{"Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			want:   []string{addSender, "Resent-From: ceo@corp.example\n"}},
		{name: "forged Resent-From rejected", policy: Reject,
			fields: []string{"Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			reject: ReasonFromNotYours},
		{name: "forged Resent-Sender replaced",
			fields: []string{"Resent-From: alice@example.com", "Resent-Sender: cfo@corp.example", "Resent-To: bob@example.com"},
			want:   []string{addSender, "Resent-From: alice@example.com\n"}},
		{name: "forged Resent-Sender rejected", policy: Reject,
			fields: []string{"Resent-From: alice@example.com", "Resent-Sender: cfo@corp.example", "Resent-To: bob@example.com"},
			reject: ReasonSenderNotYours},
		{name: "own Resent-Sender kept",
			fields: []string{"Resent-From: ceo@corp.example", "Resent-Sender: alice@example.com", "Resent-To: bob@example.com"},
			want:   []string{"Resent-From: ceo@corp.example\n", "Resent-Sender: alice@example.com\n"}},
		{name: "two Resent-From in the block",
			fields: []string{"Resent-From: alice@example.com", "Resent-From: alice@example.com", "Resent-To: bob@example.com"},
			reject: ReasonMultipleFrom},
		{name: "two own Resent-From mailboxes get Resent-Sender",
			fields: []string{"Resent-From: alice@example.com, a.smith@example.org", "Resent-To: bob@example.com"},
			want:   []string{addSender, "Resent-From: alice@example.com, a.smith@example.org\n"}},
		{name: "address in Resent-From display name rejected", policy: Reject,
			fields: []string{`Resent-From: "ceo@corp.example" <alice@example.com>`, "Resent-To: bob@example.com"},
			reject: ReasonFromNotYours},
		{name: "trace fields may come before the block",
			fields: []string{"Return-Path: <x@elsewhere.example>", "Received: from x by y; Wed, 25 Nov 2026 22:00:00 +0000", "Resent-From: alice@example.com", "Resent-To: bob@example.com"},
			want:   []string{"Resent-From: alice@example.com\n"}},
		{name: "an older block below the current one", // a reader could not tell which is current
			fields: []string{"Resent-From: alice@example.com", "Resent-To: bob@example.com", "Received: from x by y; Wed, 25 Nov 2026 22:00:00 +0000",
				"Resent-From: dave@elsewhere.example", "Resent-Sender: eve@elsewhere.example", "Resent-To: alice@example.com"},
			reject: ReasonSplitResent},
		{name: "block split by another field", // the forged Resent-From and the recipients in the second run
			fields: []string{"Resent-Date: Thu, 3 Dec 2026 10:00:00 +0000", "X-Spacer: 1", "Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			reject: ReasonSplitResent},
		{name: "block split by another field, Reject policy", policy: Reject,
			fields: []string{"Resent-Date: Thu, 3 Dec 2026 10:00:00 +0000", "X-Spacer: 1", "Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			reject: ReasonSplitResent},
		{name: "block split by a trace field",
			fields: []string{"Resent-Date: Thu, 3 Dec 2026 10:00:00 +0000", "Received: from x by y; Wed, 25 Nov 2026 22:00:00 +0000", "Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			reject: ReasonSplitResent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ok := prepareUnder(t, tt.policy, tt.reject, append(slices.Clone(tt.fields), "From: someone@elsewhere.example", "To: x@example.com")...)
			if !ok {
				return
			}
			var got, firstRun []string
			inRun, runDone := false, false
			for _, f := range mustParse(t, res.Header) {
				resentField := strings.HasPrefix(f.name, "resent-")
				switch {
				case resentField && !runDone:
					inRun = true
					firstRun = append(firstRun, string(f.raw))
				case inRun:
					runDone = true
				}
				if f.name == "resent-from" || f.name == "resent-sender" {
					got = append(got, string(f.raw))
				}
			}
			// What mppd adds stays inside the current block.
			for _, added := range []string{addFrom, addSender} {
				if strings.Contains(string(res.Header), added) && !slices.Contains(firstRun, added) {
					t.Errorf("%q added outside the current resent block:\n%s", added, res.Header)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Resent-From/-Sender = %q, want %q\n%s", got, tt.want, res.Header)
			}
			if strings.Contains(strings.ToLower(string(res.Header)), "resent-bcc") {
				t.Errorf("Resent-Bcc delivered:\n%s", res.Header)
			}
		})
	}
}
