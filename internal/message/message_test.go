package message

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
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

// prepare runs Prepare on header with the test trace and options, and
// stops the test if it fails.
func prepare(t testing.TB, header []byte) Result {
	t.Helper()
	res, err := Prepare(header, testTrace(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// wantRejectedEach runs a subtest per named header block, each of which
// Prepare must reject for reason.
func wantRejectedEach(t *testing.T, headers map[string]string, reason string) {
	t.Helper()
	for name, h := range headers {
		t.Run(name, func(t *testing.T) {
			_, err := Prepare([]byte(h), testTrace(), testOptions())
			wantRejection(t, err, reason)
		})
	}
}

// wantRecipients checks the recipients Prepare found, in order.
func wantRecipients(t testing.TB, res Result, want ...string) {
	t.Helper()
	if fmt.Sprint(res.Recipients) != fmt.Sprint(want) {
		t.Errorf("recipients = %q, want %q", res.Recipients, want)
	}
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

func TestRejectionError(t *testing.T) {
	err := error(&Rejection{Reason: ReasonMailLoop, Text: "too many"})
	if err.Error() != "message rejected (mail-loop): too many" {
		t.Errorf("Error() = %q", err.Error())
	}
}
