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
		{name: "Resent-From is checked, not From", fields: []string{"Resent-From: ceo@corp.example", "Resent-To: bob@example.com"},
			from: []string{addFrom}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			o.Sender = tt.policy
			in := hdr(append([]string{"To: bob@example.com"}, tt.fields...)...)
			res, err := Prepare(in, testTrace(), o)
			if tt.reject != "" {
				wantRejection(t, err, tt.reject)
				return
			}
			if err != nil {
				t.Fatal(err)
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

// TestResentBlock: a resent message's current block (the first run of
// Resent- fields) follows the From:/Sender: rules; older blocks are
// history and pass through.
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
		{name: "an older block is history",
			fields: []string{"Resent-From: alice@example.com", "Resent-To: bob@example.com", "Received: from x by y; Wed, 25 Nov 2026 22:00:00 +0000",
				"Resent-From: dave@elsewhere.example", "Resent-Sender: eve@elsewhere.example", "Resent-To: alice@example.com"},
			want: []string{"Resent-From: alice@example.com\n", "Resent-From: dave@elsewhere.example\n", "Resent-Sender: eve@elsewhere.example\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			o.Sender = tt.policy
			in := hdr(append([]string{"From: someone@elsewhere.example", "To: x@example.com"}, tt.fields...)...)
			res, err := Prepare(in, testTrace(), o)
			if tt.reject != "" {
				wantRejection(t, err, tt.reject)
				return
			}
			if err != nil {
				t.Fatal(err)
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
