package message

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/address"
)

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
			res := prepare(t, tt.h)
			wantRecipients(t, res, tt.want...)
			for _, r := range res.Recipients {
				if err := address.Valid(r); err != nil {
					t.Errorf("recipient %q: %v", r, err)
				}
			}
			mustParse(t, res.Header)
			got, err := Recipients(tt.h, 0)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(res.Recipients) {
				t.Errorf("Recipients = %q, %v; Prepare found %q", got, err, res.Recipients)
			}
		})
	}
}

// TestRecipientsEntryPoint checks that Recipients, which mpp's sendmail
// mode uses, applies the same recipient rules as Prepare and nothing else.
func TestRecipientsEntryPoint(t *testing.T) {
	got, err := Recipients(hdr("Resent-To: carol@example.com", "To: bob@example.com"), 0)
	if err != nil || fmt.Sprint(got) != "[carol@example.com]" {
		t.Errorf("resent: %q, %v", got, err)
	}
	_, err = Recipients(hdr("Resent-Date: Thu, 3 Dec 2026 10:00:00 +0000", "X-Spacer: 1", "Resent-To: carol@example.com"), 0)
	wantRejection(t, err, ReasonSplitResent)
	// From: and Sender: are Prepare's business, not this one's.
	got, err = Recipients(hdr("From: a@x.example", "From: b@x.example", "To: bob@example.com"), 0)
	if err != nil || fmt.Sprint(got) != "[bob@example.com]" {
		t.Errorf("two From: %q, %v", got, err)
	}
	_, err = Recipients(hdr("Subject: none"), 0)
	wantRejection(t, err, ReasonNoRecipients)
	_, err = Recipients(hdr("To: a@example.com, b@example.com"), 1)
	wantRejection(t, err, ReasonTooManyRecipients)
	_, err = Recipients(hdr("To: -oQ@example.com"), 0)
	wantRejection(t, err, ReasonBadRecipient)
	_, err = Recipients(hdr(" continued"), 0)
	wantRejection(t, err, ReasonBadHeader)
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
		"Resent- without addresses": "Resent-From: alice@example.com\nTo: bob@example.com\n\n",
	}
	wantRejectedEach(t, tests, ReasonNoRecipients)
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
	res := prepare(t, in)
	wantRecipients(t, res, "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com")
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
		"Resent-From: alice@example.com",
		"Resent-To: mallory@example.net",
		"Resent-Cc: trent@example.net",
		"Resent-Bcc: peggy@example.net",
		"From: alice@example.com",
		"To: bob@example.com",
		"Bcc: carol@example.com",
	)
	res := prepare(t, in)
	wantRecipients(t, res, "mallory@example.net", "trent@example.net", "peggy@example.net")
	mustParse(t, res.Header)
	if bytes.Contains(res.Header, []byte("peggy")) || bytes.Contains(res.Header, []byte("carol")) {
		t.Errorf("Bcc or Resent-Bcc delivered:\n%s", res.Header)
	}
	// An invalid To: does not matter when the Resent- set is used...
	if _, err := Prepare(hdr("Resent-To: bob@example.com", "To: -t@x"), testTrace(), testOptions()); err != nil {
		t.Errorf("invalid To: with Resent-To: %v", err)
	}
	// ...and an invalid Resent-To: does.
	_, err := Prepare(hdr("Resent-To: -t@x", "To: bob@example.com"), testTrace(), testOptions())
	wantRejection(t, err, ReasonBadRecipient)
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
