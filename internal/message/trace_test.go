package message

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"
)

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
