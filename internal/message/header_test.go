package message

import (
	"errors"
	"testing"
)

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
	wantRejectedEach(t, bad, ReasonBadHeader)
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
			mustParse(t, prepare(t, []byte(h)).Header)
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
