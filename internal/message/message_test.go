package message

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/address"
)

var testTime = time.Date(2026, 11, 25, 22, 20, 8, 0, time.UTC)

const testDate = "Wed, 25 Nov 2026 22:20:08 +0000"

func testTrace() Trace {
	return Trace{
		Login:     "alice",
		Addresses: []string{"alice@example.com", "a.smith@Example.ORG"},
		Client:    "192.0.2.7",
		Session:   "s1",
		Time:      testTime,
	}
}

func testOptions() Options {
	o := DefaultOptions()
	o.Hostname = "mpp.example.net"
	return o
}

// hdr joins lines into a header block ending with the empty line.
func hdr(lines ...string) []byte {
	return []byte(strings.Join(lines, "\n") + "\n\n")
}

type hfield struct{ name, raw string }

// mustParse parses a header block Prepare produced and checks the
// invariants every delivered header has: it parses, ends with the empty
// line, starts with our Received:, has no Bcc:/Resent-Bcc:, exactly one
// From: and at most one Sender:.
func mustParse(t testing.TB, h []byte) []hfield {
	t.Helper()
	if !bytes.HasSuffix(h, []byte("\n\n")) {
		t.Fatalf("header does not end with the empty line: %q", h)
	}
	fs, err := parseFields(h)
	if err != nil {
		t.Fatalf("delivered header does not parse: %v\n%s", err, h)
	}
	var out []hfield
	count := map[string]int{}
	for _, f := range fs {
		out = append(out, hfield{f.name, string(f.raw)})
		count[f.name]++
	}
	if len(fs) == 0 || fs[0].name != "received" || !strings.Contains(string(fs[0].raw), "(mppd) with MPP") {
		t.Fatalf("header does not start with mppd's Received:\n%s", h)
	}
	if count["bcc"]+count["resent-bcc"] != 0 {
		t.Fatalf("Bcc delivered:\n%s", h)
	}
	if count["from"] != 1 || count["sender"] > 1 {
		t.Fatalf("%d From:, %d Sender: delivered:\n%s", count["from"], count["sender"], h)
	}
	return out
}

func named(fs []hfield, name string) []string {
	var v []string
	for _, f := range fs {
		if f.name == name {
			v = append(v, f.raw)
		}
	}
	return v
}

// wantRejection checks err is a *Rejection with reason, and that its text is
// safe to put in a reply line.
func wantRejection(t testing.TB, err error, reason string) *Rejection {
	t.Helper()
	var rj *Rejection
	if !errors.As(err, &rj) {
		t.Fatalf("err = %v (%T), want a *Rejection %s", err, err, reason)
	}
	if rj.Reason != reason {
		t.Fatalf("reason = %q (%s), want %q", rj.Reason, rj.Text, reason)
	}
	checkText(t, rj.Text)
	return rj
}

func checkText(t testing.TB, s string) {
	t.Helper()
	if len(s) > 400 {
		t.Errorf("rejection text is %d octets", len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			t.Fatalf("rejection text has byte %#x: %q", s[i], s)
		}
	}
}

func TestHeaderLength(t *testing.T) {
	tests := []struct {
		msg   string
		n     int
		found bool
	}{
		{"", 0, false},
		{"\n", 1, true},
		{"\nbody\n", 1, true},
		{"To: a@b\n\nbody\n\nmore\n", 9, true},
		{"To: a@b\nSubject: x\n", 19, false},
	}
	for _, tt := range tests {
		n, found := HeaderLength([]byte(tt.msg))
		if n != tt.n || found != tt.found {
			t.Errorf("HeaderLength(%q) = %d, %v; want %d, %v", tt.msg, n, found, tt.n, tt.found)
		}
	}
}

func TestHeaderSyntax(t *testing.T) {
	bad := map[string]string{
		"first line a continuation": " To: bob@example.com\n\n",
		"not a field":               "To: bob@example.com\nHello there\n\n",
		"body without separator":    "Hello,\nthis is my message.\n",
		"mbox From line":            "From alice Wed Nov 25 22:20:08 2026\nTo: bob@example.com\n\n",
		"space before colon":        "To: bob@example.com\nBcc : carol@example.com\n\n",
		"empty name":                ": x\nTo: bob@example.com\n\n",
		"non-ASCII name":            "T\xc3\xb6: x\nTo: bob@example.com\n\n",
		"control in name":           "X-A\x01: x\nTo: bob@example.com\n\n",
		"whitespace-only line":      "To: bob@example.com\n \nBcc: carol@example.com\n\n",
		"NUL in value (case 18)":    "To: bob@example.com\nSubject: a\x00b\n\n",
		"bare CR (case 17)":         "To: bob@example.com\nSubject: a\rb\n\n",
		"CR before LF (case 17)":    "To: bob@example.com\r\nSubject: x\n\n",
		"smuggled dot line":         "To: bob@example.com\n.\rMAIL FROM:<x>\n\n",
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := Prepare([]byte(h), testTrace(), testOptions())
			wantRejection(t, err, ReasonBadHeader)
		})
	}
	good := map[string]string{
		"folded with tab and space": "To: bob@example.com,\n\tcarol@example.com,\n  dave@example.com\nSubject: x\n\n",
		"odd but legal name":        "X-Odd!#$%&'*+-.^_`|~name: v\nTo: bob@example.com\n\n",
		"empty value":               "Subject:\nTo: bob@example.com\n\n",
		"no space after colon":      "To:bob@example.com\n\n",
		"8-bit value":               "Subject: gr\xc3\xbc\xc3\x9fe\nTo: bob@example.com\n\n",
		"no empty line (case 20)":   "To: bob@example.com\nSubject: x\n",
		"no final newline":          "To: bob@example.com",
	}
	for name, h := range good {
		t.Run(name, func(t *testing.T) {
			res, err := Prepare([]byte(h), testTrace(), testOptions())
			if err != nil {
				t.Fatal(err)
			}
			mustParse(t, res.Header)
		})
	}
}

func TestHeaderAfterEmptyLineIsCallerError(t *testing.T) {
	_, err := Prepare([]byte("To: bob@example.com\n\nbody\n"), testTrace(), testOptions())
	var rj *Rejection
	if err == nil || errors.As(err, &rj) {
		t.Fatalf("err = %v, want a non-Rejection error", err)
	}
}

func TestRecipients(t *testing.T) {
	tests := []struct {
		name string
		h    []byte
		want []string
	}{
		{"to cc bcc in order", hdr("Cc: carol@example.com", "To: bob@example.com", "Bcc: dave@example.com"),
			[]string{"carol@example.com", "bob@example.com", "dave@example.com"}},
		{"display names and comments", hdr(`To: "Bob, the builder" <bob@example.com>, Carol (work) <carol@example.com>`, "Cc: dave@example.com (Dave)"),
			[]string{"bob@example.com", "carol@example.com", "dave@example.com"}},
		{"folded list", hdr("To: bob@example.com,", "  carol@example.com,", "\tdave@example.com"),
			[]string{"bob@example.com", "carol@example.com", "dave@example.com"}},
		{"duplicates, domain case", hdr("To: bob@example.com, Bob@Example.COM", "Cc: bob@EXAMPLE.com", "Bcc: <bob@example.com>"),
			[]string{"bob@example.com", "Bob@example.com"}},
		{"several To fields", hdr("To: bob@example.com", "To: carol@example.com"),
			[]string{"bob@example.com", "carol@example.com"}},
		{"group", hdr("To: friends: bob@example.com, carol@example.com;", "Cc: undisclosed-recipients:;"),
			[]string{"bob@example.com", "carol@example.com"}},
		{"empty Bcc", hdr("To: bob@example.com", "Bcc:"), []string{"bob@example.com"}},
		{"ordinary addresses", hdr("To: o'brien@example.com, a+tag@sub.example.co.uk"),
			[]string{"o'brien@example.com", "a+tag@sub.example.co.uk"}},
		{"quoted local part that is a dot-atom", hdr(`To: "bob"@example.com`), []string{"bob@example.com"}},
		{"encoded word in an unknown charset", hdr("To: =?x-unknown?q?B=F6b?= <bob@example.com>"), []string{"bob@example.com"}},
		{"encoded word utf-8", hdr("To: =?utf-8?q?B=C3=B6b?= <bob@example.com>"), []string{"bob@example.com"}},
		{"obsolete empty list elements", hdr("To: bob@example.com,, ,carol@example.com"), []string{"bob@example.com", "carol@example.com"}},
		{"Resent- fields ignored without Resent-", hdr("To: bob@example.com"), []string{"bob@example.com"}},
		{"special bracket in quoted display name", hdr(`To: "Bob [work]" <bob@example.com>`), []string{"bob@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Prepare(tt.h, testTrace(), testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.Recipients) != fmt.Sprint(tt.want) {
				t.Errorf("recipients = %q, want %q", res.Recipients, tt.want)
			}
			for _, r := range res.Recipients {
				if err := address.Valid(r); err != nil {
					t.Errorf("recipient %q: %v", r, err)
				}
			}
			mustParse(t, res.Header)
		})
	}
}

// TestBadRecipients covers catalogue section D (34–36, 39) as header
// fields, and other addresses package address refuses.
func TestBadRecipients(t *testing.T) {
	tests := map[string]string{
		"34 -oQ":                  "To: -oQ/tmp/q -X/tmp/pwn.log",
		"34 quoted -C":            `To: "-C/tmp/evil.cf"@example.com`,
		"34 -bh":                  "To: -bh@example.com",
		"34 -t":                   "Cc: -t@x",
		"34 in angle brackets":    "To: Bob <-bh@example.com>",
		"35 PHPMailer":            `To: "attacker\" -oQ/tmp/ -X/var/www/x.php some"@email.com`,
		"36 sleep":                "To: ;sleep 5;@x",
		"36 command substitution": "To: $(id)@x",
		"36 pipe":                 "Bcc: |/bin/sh@x",
		"36 backticks":            "To: `id`@x",
		"39 Exim run":             "To: ${run{/bin/id}}@example.com",
		"39 Exim variable":        "To: $local_part@x",
		"no @":                    "To: bob",
		"address literal":         "To: bob@[192.0.2.1]",
		"address literal v6":      "To: Bob <bob@[IPv6:2001:db8::1]>",
		"unbalanced quote":        `To: "bob <bob@example.com>`,
		"unbalanced comment":      "To: bob@example.com (oops",
		"stray close paren":       "To: bob@example.com)",
		"unbalanced angle":        "To: <bob@example.com",
		"non-ASCII local part":    "To: jos\xc3\xa9@example.com",
		"quoted local with space": `To: "a b"@example.com`,
		"trailing dot domain":     "To: bob@example.com.",
		"comment only":            "To: (nobody)",
	}
	for name, line := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Prepare(hdr("From: alice@example.com", line), testTrace(), testOptions())
			wantRejection(t, err, ReasonBadRecipient)
		})
	}
}

func TestBadRecipientTextIsEscapedAndShort(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, err := Prepare(hdr("To: \"-"+long+"\x01\"@example.com"), testTrace(), testOptions())
	rj := wantRejection(t, err, ReasonBadRecipient)
	if !strings.Contains(rj.Text, `"-xxx`) || strings.Contains(rj.Text, long[:100]) {
		t.Errorf("text = %q", rj.Text)
	}
}

// TestNoRecipients covers catalogue case 20.
func TestNoRecipients(t *testing.T) {
	tests := map[string]string{
		"empty message":             "",
		"empty header":              "\n",
		"no address fields":         "Subject: hi\nFrom: alice@example.com\n\n",
		"no separator, no address":  "Subject: hi\n",
		"only a group":              "To: undisclosed-recipients:;\n\n",
		"empty To":                  "To:\nCc:   \n\n",
		"Resent- without addresses": "To: bob@example.com\nResent-From: alice@example.com\n\n",
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Prepare([]byte(h), testTrace(), testOptions())
			wantRejection(t, err, ReasonNoRecipients)
		})
	}
}

// TestTooManyRecipients covers catalogue case 46.
func TestTooManyRecipients(t *testing.T) {
	list := func(n int) string {
		var a []string
		for i := range n {
			a = append(a, fmt.Sprintf("r%d@example.com", i))
		}
		return strings.Join(a, ",\n ")
	}
	res, err := Prepare(hdr("To: "+list(100)), testTrace(), testOptions())
	if err != nil || len(res.Recipients) != 100 {
		t.Fatalf("100 recipients: %v, %d", err, len(res.Recipients))
	}
	_, err = Prepare(hdr("To: "+list(100), "Bcc: extra@example.com"), testTrace(), testOptions())
	wantRejection(t, err, ReasonTooManyRecipients)

	// Duplicates count once.
	res, err = Prepare(hdr("To: "+list(100), "Cc: "+list(100)), testTrace(), testOptions())
	if err != nil || len(res.Recipients) != 100 {
		t.Fatalf("100 recipients twice: %v, %d", err, len(res.Recipients))
	}

	o := testOptions()
	o.MaxRecipients = 2
	_, err = Prepare(hdr("To: a@x.example, b@x.example, c@x.example"), testTrace(), o)
	wantRejection(t, err, ReasonTooManyRecipients)
}

// TestBccRemoved covers catalogue case 38.
func TestBccRemoved(t *testing.T) {
	in := hdr(
		"To: bob@example.com",
		"Bcc: carol@example.com,",
		"  dave@example.com",
		"Subject: hello",
		"bcc: erin@example.com",
		"X-Keep: after bcc",
		"BCC:",
	)
	res, err := Prepare(in, testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"}
	if fmt.Sprint(res.Recipients) != fmt.Sprint(want) {
		t.Errorf("recipients = %q, want %q", res.Recipients, want)
	}
	fs := mustParse(t, res.Header)
	if bytes.Contains(bytes.ToLower(res.Header), []byte("\nbcc")) || bytes.Contains(res.Header, []byte("dave")) {
		t.Errorf("Bcc or its continuation line delivered:\n%s", res.Header)
	}
	var client []string
	for _, f := range fs[1:] {
		client = append(client, f.raw)
	}
	wantClient := []string{"To: bob@example.com\n", "Subject: hello\n", "X-Keep: after bcc\n"}
	if got := strings.Join(client[:3], ""); got != strings.Join(wantClient, "") {
		t.Errorf("client fields = %q", client)
	}
	if fmt.Sprint(res.Removed) != "[Bcc Bcc Bcc]" {
		t.Errorf("Removed = %q", res.Removed)
	}
}

// TestResent covers catalogue case 37: with any Resent- field, the
// recipients are the Resent- set only, as sendmail -t does.
func TestResent(t *testing.T) {
	in := hdr(
		"From: alice@example.com",
		"To: bob@example.com",
		"Bcc: carol@example.com",
		"Resent-From: alice@example.com",
		"Resent-To: mallory@example.net",
		"Resent-Cc: trent@example.net",
		"Resent-Bcc: peggy@example.net",
	)
	res, err := Prepare(in, testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mallory@example.net", "trent@example.net", "peggy@example.net"}
	if fmt.Sprint(res.Recipients) != fmt.Sprint(want) {
		t.Errorf("recipients = %q, want %q", res.Recipients, want)
	}
	mustParse(t, res.Header)
	if bytes.Contains(res.Header, []byte("peggy")) || bytes.Contains(res.Header, []byte("carol")) {
		t.Errorf("Bcc or Resent-Bcc delivered:\n%s", res.Header)
	}
	// An invalid To: does not matter when the Resent- set is used...
	_, err = Prepare(hdr("To: -t@x", "Resent-To: bob@example.com"), testTrace(), testOptions())
	if err != nil {
		t.Errorf("invalid To: with Resent-To: %v", err)
	}
	// ...and an invalid Resent-To: does.
	_, err = Prepare(hdr("To: bob@example.com", "Resent-To: -t@x"), testTrace(), testOptions())
	wantRejection(t, err, ReasonBadRecipient)
}

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

// TestMailLoop covers catalogue case 47.
func TestMailLoop(t *testing.T) {
	received := func(n int) []string {
		l := []string{"To: bob@example.com"}
		for i := range n {
			l = append(l, fmt.Sprintf("Received: from h%d.example by h%d.example;", i, i+1), " Wed, 25 Nov 2026 22:20:08 +0000")
		}
		return l
	}
	res, err := Prepare(hdr(received(50)...), testTrace(), testOptions())
	if err != nil {
		t.Fatalf("50 Received: %v", err)
	}
	if n := len(named(mustParse(t, res.Header), "received")); n != 51 {
		t.Errorf("%d Received: delivered, want 51", n)
	}
	_, err = Prepare(hdr(received(51)...), testTrace(), testOptions())
	wantRejection(t, err, ReasonMailLoop)

	o := testOptions()
	o.MaxReceived = 2
	_, err = Prepare(hdr(received(3)...), testTrace(), o)
	wantRejection(t, err, ReasonMailLoop)
}

func TestReceived(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Trace, *Options)
		want   string
	}{
		{"with client address", nil,
			"Received: from [192.0.2.7]\n\tby mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"client address off", func(_ *Trace, o *Options) { o.ReceivedClientAddress = false },
			"Received: by mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"IPv6", func(tr *Trace, _ *Options) { tr.Client = "2001:DB8::1" },
			"Received: from [IPv6:2001:db8::1]\n\tby mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"IPv4-mapped, zone", func(tr *Trace, _ *Options) { tr.Client = "::ffff:192.0.2.7" },
			"Received: from [192.0.2.7]\n\tby mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"zone dropped", func(tr *Trace, _ *Options) { tr.Client = "fe80::1%eth0\r\nX: y" },
			"Received: from [IPv6:fe80::1]\n\tby mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"not an IP", func(tr *Trace, _ *Options) { tr.Client = "pipe" },
			"Received: by mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"host name lower-cased", func(_ *Trace, o *Options) { o.Hostname = "MPP.Example.NET"; o.ReceivedClientAddress = false },
			"Received: by mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"host name with trailing dot and underscore", func(_ *Trace, o *Options) { o.Hostname = "my_host.example."; o.ReceivedClientAddress = false },
			"Received: by my_host.example (mppd) with MPP id s1\n\t(authenticated user alice);\n\t" + testDate + "\n"},
		{"hostile login and session (case 40)", func(tr *Trace, o *Options) {
			tr.Login = "al)ice\r\nBcc: x@y\\("
			tr.Session = "s1\r\nX-Injected: 1 (x)"
			o.ReceivedClientAddress = false
		}, "Received: by mpp.example.net (mppd) with MPP id s1__X-Injected__1__x_\n\t(authenticated user al\\)ice??Bcc: x@y\\\\\\();\n\t" + testDate + "\n"},
		{"time zone kept", func(tr *Trace, o *Options) {
			tr.Time = testTime.In(time.FixedZone("X", -5*3600-30*60))
			o.ReceivedClientAddress = false
		}, "Received: by mpp.example.net (mppd) with MPP id s1\n\t(authenticated user alice);\n\tWed, 25 Nov 2026 16:50:08 -0530\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, o := testTrace(), testOptions()
			if tt.change != nil {
				tt.change(&tr, &o)
			}
			res, err := Prepare(hdr("To: bob@example.com", "Date: x", "Message-ID: <x@y>"), tr, o)
			if err != nil {
				t.Fatal(err)
			}
			fs := mustParse(t, res.Header)
			if fs[0].raw != tt.want {
				t.Errorf("Received:\n got %q\nwant %q", fs[0].raw, tt.want)
			}
			if len(fs) != 5 {
				t.Errorf("%d fields, want 5:\n%s", len(fs), res.Header)
			}
		})
	}
}

var messageIDPattern = regexp.MustCompile(`^Message-ID: <[a-z2-7]{24}@mpp\.example\.net>\n$`)

func TestDateAndMessageID(t *testing.T) {
	res, err := Prepare(hdr("To: bob@example.com"), testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	fs := mustParse(t, res.Header)
	if got := named(fs, "date"); len(got) != 1 || got[0] != "Date: "+testDate+"\n" {
		t.Errorf("Date = %q", got)
	}
	ids := named(fs, "message-id")
	if len(ids) != 1 || !messageIDPattern.MatchString(ids[0]) {
		t.Errorf("Message-ID = %q", ids)
	}
	if fmt.Sprint(res.Added) != "[Received From Date Message-ID]" {
		t.Errorf("Added = %q", res.Added)
	}
	res2, _ := Prepare(hdr("To: bob@example.com"), testTrace(), testOptions())
	if bytes.Equal(res.Header, res2.Header) {
		t.Error("two messages got the same Message-ID")
	}

	// Present ones are kept, duplicates passed through, nothing added.
	in := hdr("Date: Mon, 1 Jan 2001 00:00:00 +0000", "message-id: <a@b>", "To: bob@example.com", "DATE: again", "Message-Id: <c@d>")
	res, err = Prepare(in, testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	fs = mustParse(t, res.Header)
	if got := named(fs, "date"); fmt.Sprint(got) != fmt.Sprint([]string{"Date: Mon, 1 Jan 2001 00:00:00 +0000\n", "DATE: again\n"}) {
		t.Errorf("Date = %q", got)
	}
	if got := named(fs, "message-id"); fmt.Sprint(got) != fmt.Sprint([]string{"message-id: <a@b>\n", "Message-Id: <c@d>\n"}) {
		t.Errorf("Message-ID = %q", got)
	}
}

// TestPassThrough checks that every field mppd does not own is delivered
// byte for byte and in order, after Received: and before the added fields.
func TestPassThrough(t *testing.T) {
	client := "Subject:   two  spaces \t\n" +
		"To: Bob <bob@example.com>,\n\t carol@example.com\n" +
		"X-8bit: caf\xc3\xa9 \xff\n" +
		"Return-Path: <whatever>\n" +
		"Content-Type: text/plain;\n  charset=utf-8\n" +
		"From: alice@example.com\n" +
		"Received: from elsewhere\n" +
		"X-Empty:\n" +
		"MIME-Version: 1.0\n"
	res, err := Prepare([]byte(client+"\n"), testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	fs := mustParse(t, res.Header)
	var got strings.Builder
	for _, f := range fs[1:] {
		if f.name == "date" || f.name == "message-id" {
			continue
		}
		got.WriteString(f.raw)
	}
	if got.String() != client {
		t.Errorf("client fields changed:\n got %q\nwant %q", got.String(), client)
	}
	if !bytes.HasPrefix(res.Header, []byte("Received: ")) || !bytes.Contains(res.Header, []byte("\n"+client)) {
		t.Errorf("client fields not contiguous after Received:\n%s", res.Header)
	}
}

// TestGeneratedFieldsAreSingleFields covers catalogue case 40: whatever the
// server-side values hold, each generated field is one logical field, and
// nothing of them can start a new field.
func TestGeneratedFieldsAreSingleFields(t *testing.T) {
	evil := "x\r\nBcc: evil@example.com\n\nbody\x00\x7f\xc3"
	tr := Trace{
		Login:     evil,
		Addresses: []string{"alice@example.com", "alice@example.com\r\nBcc: evil@example.com"},
		Client:    evil,
		Session:   evil,
		Time:      testTime,
	}
	res, err := Prepare(hdr("To: bob@example.com", "From: ceo@corp.example", "Sender: cfo@corp.example"), tr, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	fs := mustParse(t, res.Header)
	names := []string{}
	for _, f := range fs {
		names = append(names, f.name)
		for i := 0; i < len(f.raw); i++ {
			if c := f.raw[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
				t.Errorf("field %q has byte %#x", f.raw, c)
			}
		}
	}
	if fmt.Sprint(names) != "[received to from sender date message-id]" {
		t.Errorf("fields = %q\n%s", names, res.Header)
	}
	if got := named(fs, "sender"); fmt.Sprint(got) != "[Sender: alice@example.com\n]" {
		t.Errorf("Sender = %q", got)
	}
	if len(res.Recipients) != 1 {
		t.Errorf("recipients = %q", res.Recipients)
	}

	// Server-side values that cannot be made safe are server errors.
	for name, change := range map[string]func(*Trace, *Options){
		"empty host name":        func(_ *Trace, o *Options) { o.Hostname = "" },
		"host name with CRLF":    func(_ *Trace, o *Options) { o.Hostname = "mpp.example.net\r\nBcc: x@y" },
		"host name literal":      func(_ *Trace, o *Options) { o.Hostname = "[127.0.0.1]" },
		"host name with space":   func(_ *Trace, o *Options) { o.Hostname = "mpp example" },
		"host name only a dot":   func(_ *Trace, o *Options) { o.Hostname = "." },
		"host name empty label":  func(_ *Trace, o *Options) { o.Hostname = "a..b" },
		"host name hyphen":       func(_ *Trace, o *Options) { o.Hostname = "-a.b" },
		"no addresses":           func(tr *Trace, _ *Options) { tr.Addresses = nil },
		"primary with CRLF":      func(tr *Trace, _ *Options) { tr.Addresses = []string{"alice@example.com\r\nBcc: x@y"} },
		"primary with space":     func(tr *Trace, _ *Options) { tr.Addresses = []string{"alice smith@example.com"} },
		"primary unqualified":    func(tr *Trace, _ *Options) { tr.Addresses = []string{"alice"} },
		"primary leading hyphen": func(tr *Trace, _ *Options) { tr.Addresses = []string{"-alice@example.com"} },
	} {
		t.Run(name, func(t *testing.T) {
			tr, o := testTrace(), testOptions()
			change(&tr, &o)
			_, err := Prepare(hdr("To: bob@example.com"), tr, o)
			var rj *Rejection
			if err == nil || errors.As(err, &rj) {
				t.Fatalf("err = %v, want a server error", err)
			}
		})
	}
}

// TestPathological covers catalogue cases 42 and 45: hostile address
// fields are refused by the linear token scan, before net/mail, and no
// input costs more than a few milliseconds. The engine enforces the
// 102,400-octet header limit first; these inputs are as large as that
// allows, and some far larger, to show the cost is linear anyway.
func TestPathological(t *testing.T) {
	const limit = 102_400
	tests := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"100k nested comments", hdr("To: bob@example.com " + strings.Repeat("(", 100_000) + strings.Repeat(")", 100_000)), ReasonAddressTokens},
		{"nested comments within the limit", hdr("To: bob@example.com " + strings.Repeat("(", limit/2-100) + strings.Repeat(")", limit/2-100)), ReasonAddressTokens},
		{"50k commas", hdr("To: bob@example.com" + strings.Repeat(",", 50_000)), ReasonAddressTokens},
		{"1 MB domain literal", hdr("To: bob@[" + strings.Repeat("1", 1<<20) + "]"), ReasonBadRecipient},
		{"100 KB domain literal", hdr("To: bob@[" + strings.Repeat("1", limit-20) + "]"), ReasonBadRecipient},
		{"unbalanced quotes", hdr("To: " + strings.Repeat(`"a" "`, limit/5)), ReasonAddressTokens},
		{"one unbalanced quote", hdr("To: \"" + strings.Repeat("a", limit-10)), ReasonBadRecipient},
		{"unbalanced comment", hdr("To: bob@example.com (" + strings.Repeat("a", limit-30)), ReasonBadRecipient},
		{"many comments in From", hdr("To: bob@example.com", "From: "+strings.Repeat("(x)", 20_000)), ReasonAddressTokens},
		{"many tokens in Sender", hdr("To: bob@example.com", "Sender: "+strings.Repeat("a.", 20_000)), ReasonAddressTokens},
		{"10k addresses", hdr("To: " + strings.Repeat("a@b.example,", 8_500)), ReasonAddressTokens},
		{"200k one-byte lines (case 45)", bytes.Repeat([]byte("a\n"), 200_000), ReasonBadHeader},
		{"10 MB folded field (case 45)", append([]byte("X: a"), bytes.Repeat([]byte("\n b"), 3_500_000)...), ReasonNoRecipients},
		{"trailing whitespace-only line", hdr("To: bob@example.com\n "), ReasonBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Prepare(tt.in, testTrace(), testOptions())
			d := time.Since(start)
			wantRejection(t, err, tt.reason)
			budget := 100 * time.Millisecond
			if len(tt.in) > 2*limit {
				budget = time.Duration(len(tt.in)/limit) * 100 * time.Millisecond
			}
			if testing.Short() || raceEnabled {
				budget *= 10
			}
			if d > budget {
				t.Errorf("took %v (budget %v)", d, budget)
			}
			t.Logf("%d octets: %v", len(tt.in), d)
		})
	}
}

// TestWorstCaseWithinLimits times the most expensive inputs that pass the
// token scan and reach net/mail, at the header-size limit.
func TestWorstCaseWithinLimits(t *testing.T) {
	tests := map[string][]byte{
		"5k addresses (bad recipient at the end)": hdr("To: " + strings.Repeat("a@b.example,", 3_400) + "-x@y"),
		"long display names":                      hdr("To: " + strings.Repeat(`"`+strings.Repeat("n", 1000)+`" <a@b.example>,`, 90)),
		"long comment":                            hdr("To: a@b.example (" + strings.Repeat("c", 100_000) + ")"),
		"deep comment":                            hdr("To: a@b.example " + strings.Repeat("(", 10_000) + strings.Repeat(")", 10_000)),
		"long quoted string":                      hdr(`To: "` + strings.Repeat("q", 100_000) + `" <a@b.example>`),
		"encoded words":                           hdr("To: " + strings.Repeat("=?utf-8?q?abcdefgh?= ", 4_000) + "<a@b.example>"),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, _ = Prepare(in, testTrace(), testOptions())
			d := time.Since(start)
			budget := 100 * time.Millisecond
			if raceEnabled {
				budget *= 10
			}
			if d > budget {
				t.Errorf("%d octets took %v", len(in), d)
			}
			t.Logf("%d octets: %v", len(in), d)
		})
	}
}

func TestRejectionError(t *testing.T) {
	err := error(&Rejection{Reason: ReasonMailLoop, Text: "too many"})
	if err.Error() != "message rejected (mail-loop): too many" {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestScanAddressField(t *testing.T) {
	tests := []struct {
		in   string
		want scanResult
	}{
		{`Bob <bob@example.com>`, scanOK},
		{`"Bob \" (x" <bob@example.com> (a (nested) comment \) )`, scanOK},
		{`a@b, c@d; e:f`, scanOK},
		{`"unterminated`, scanUnbalanced},
		{`"ends in backslash\`, scanUnbalanced},
		{`(unterminated (nested)`, scanUnbalanced},
		{`x)`, scanUnbalanced},
		{`x]`, scanUnbalanced},
		{`a@[1.2.3.4`, scanUnbalanced},
		{`a@[1.2.3.4]`, scanLiteral},
		{`"[in quotes]" <a@b>`, scanOK},
		{`(in [comment]) a@b`, scanOK},
	}
	for _, tt := range tests {
		if got := scanAddressField(tt.in, 100); got != tt.want {
			t.Errorf("scanAddressField(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// Counting: 5 tokens = "a" "@" "b" "," "c"
	if scanAddressField("a@b,c", 5) != scanOK || scanAddressField("a@b,c", 4) != scanTooMany {
		t.Error("token count off")
	}
	if scanAddressField("((()))", 3) != scanOK || scanAddressField("((()))", 2) != scanTooMany {
		t.Error("nested comment count off")
	}
}

// typicalHeader is about 2 KB, like a message from a desktop client.
var typicalHeader = []byte(`From: Alice Example <alice@example.com>
To: Bob Example <bob@example.com>, "Carol, from accounts" <carol@example.org>,
 dave@example.net
Cc: Erin <erin@example.com>, frank@example.com
Bcc: grace@example.com
Subject: Quarterly numbers and the plan for the offsite in
 December, with a few notes on the budget
Date: Wed, 25 Nov 2026 22:20:08 +0100
Message-ID: <c0ffee.12345@alice-laptop.example.com>
In-Reply-To: <beef.6789@mail.example.org>
References: <a1@mail.example.org> <a2@mail.example.org> <a3@mail.example.org>
 <a4@mail.example.org> <beef.6789@mail.example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="------------0123456789abcdef"
Content-Language: en-US
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101
 Thunderbird/128.5.0
X-Mailer: Example Mail 1.2.3
Organization: Example Corp.
Reply-To: Alice Example <alice@example.com>
Autocrypt: addr=alice@example.com; keydata=
 mDMEZbCdEhYJKwYBBAHaRw8BAQdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAtBlBbGljZSA8YWxpY2VAZXhhbXBsZS5jb20+iJMEExYKADsWIQQAAAAAAAAAAAAAAAA
 AAAAAAAAAAAUCZbCdEgIbAwULCQgHAgIiAgYVCgkICwIEFgIDAQIeBwIXgAAKCRAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
X-Priority: 3

`)

func TestTypicalHeader(t *testing.T) {
	res, err := Prepare(typicalHeader, testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	mustParse(t, res.Header)
	if len(res.Recipients) != 6 {
		t.Errorf("recipients = %q", res.Recipients)
	}
	if len(typicalHeader) < 1800 || len(typicalHeader) > 2400 {
		t.Errorf("typical header is %d octets, want about 2 KB", len(typicalHeader))
	}
}

func BenchmarkPrepare(b *testing.B) {
	tr, o := testTrace(), testOptions()
	b.SetBytes(int64(len(typicalHeader)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Prepare(typicalHeader, tr, o); err != nil {
			b.Fatal(err)
		}
	}
}
