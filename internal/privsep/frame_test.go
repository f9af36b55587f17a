package privsep

import (
	"strings"
	"testing"
)

var lim = requestLimits{MaxRecipients: 3}

func TestDecodeRequestAccepts(t *testing.T) {
	tok := strings.Repeat("0123456789abcdef", 4)
	for _, frame := range []string{
		`{"type":"auth","id":1,"user":"YWxpY2U=","password":"c2VjcmV0","client":"192.0.2.7","session":"a1b2"}`,
		`{"type":"auth","id":18446744073709551615,"user":"YWxpY2U=","password":"6XTp","client":"::1","session":"` + strings.Repeat("A-z9", 16) + `"}`,
		`{"type":"deliver","id":2,"token":"` + tok + `","session":"s","sender":"a@b","recipients":["c@d","e@f","g@h"]}`,
		`{"type":"end","id":3,"session":"s","token":"` + tok + `"}`,
		`{"type":"notify","id":4,"state":"READY=1\nSTATUS=Serving 2 sessions\nMONOTONIC_USEC=123"}`,
		`{"type":"notify","id":5,"state":"STOPPING=1"}`,
		`{"type":"notify","id":6,"state":"WATCHDOG=1"}`,
		`{"type":"notify","id":7,"state":"RELOADING=1"}`,
		` {"id":1,"type":"end","session":"s","token":"` + tok + `"} `,
	} {
		if _, err := decodeRequest([]byte(frame), lim); err != nil {
			t.Errorf("%s: %v", frame, err)
		}
	}
}

func TestDecodeRequestRefuses(t *testing.T) {
	tok := strings.Repeat("0123456789abcdef", 4)
	auth := func(user, pass, client, session string) string {
		return `{"type":"auth","id":1,"user":"` + user + `","password":"` + pass + `","client":"` + client + `","session":"` + session + `"}`
	}
	deliver := func(token, sender, rcpts string) string {
		return `{"type":"deliver","id":2,"token":"` + token + `","session":"s","sender":"` + sender + `","recipients":` + rcpts + `}`
	}
	for name, frame := range map[string]string{
		"empty":             ``,
		"null":              `null`,
		"array":             `[]`,
		"no type":           `{"id":1}`,
		"type not a string": `{"type":1,"id":1}`,
		"unknown type":      `{"type":"exec","id":1}`,
		"reply type":        `{"type":"reply","id":1,"result":"ok"}`,
		"hello type":        `{"type":"hello"}`,
		"trailing":          `{"type":"notify","id":4,"state":"READY=1"} x`,
		"two objects":       `{"type":"notify","id":4,"state":"READY=1"}{}`,
		"unknown field":     `{"type":"notify","id":4,"state":"READY=1","x":1}`,
		"not UTF-8":         "{\"type\":\"notify\",\"id\":4,\"state\":\"STATUS=\xff\"}",
		"negative id":       `{"type":"notify","id":-1,"state":"READY=1"}`,
		"id zero":           `{"type":"notify","id":0,"state":"READY=1"}`,
		"no id":             `{"type":"notify","state":"READY=1"}`,
		"user empty":        auth("", "c2VjcmV0", "192.0.2.7", "s"),
		"user with space":   auth("YSBi", "c2VjcmV0", "192.0.2.7", "s"),
		"user too long":     auth(strings.Repeat("YWFh", 86), "c2VjcmV0", "192.0.2.7", "s"),
		"user not base64":   auth("alice!", "c2VjcmV0", "192.0.2.7", "s"),
		"password empty":    auth("YWxpY2U=", "", "192.0.2.7", "s"),
		"password with LF":  auth("YWxpY2U=", "YQpi", "192.0.2.7", "s"),
		"password with NUL": auth("YWxpY2U=", "YQBi", "192.0.2.7", "s"),
		"client a name":     auth("YWxpY2U=", "c2VjcmV0", "localhost", "s"),
		"client with zone":  auth("YWxpY2U=", "c2VjcmV0", "fe80::1%eth0", "s"),
		"client empty":      auth("YWxpY2U=", "c2VjcmV0", "", "s"),
		"session empty":     auth("YWxpY2U=", "c2VjcmV0", "192.0.2.7", ""),
		"session slash":     auth("YWxpY2U=", "c2VjcmV0", "192.0.2.7", "a/b"),
		"session too long":  auth("YWxpY2U=", "c2VjcmV0", "192.0.2.7", strings.Repeat("a", 65)),
		"token short":       deliver(tok[:63], "a@b", `["c@d"]`),
		"token upper":       deliver(strings.ToUpper(tok), "a@b", `["c@d"]`),
		"sender empty":      deliver(tok, "", `["c@d"]`),
		"sender option":     deliver(tok, "-f", `["c@d"]`),
		"sender space":      deliver(tok, "a b@c", `["c@d"]`),
		"no recipients":     deliver(tok, "a@b", `[]`),
		"null recipients":   deliver(tok, "a@b", `null`),
		"4 recipients":      deliver(tok, "a@b", `["a@b","c@d","e@f","g@h"]`),
		"recipient option":  deliver(tok, "a@b", `["-bs"]`),
		"recipient CR":      deliver(tok, "a@b", `["a@b\r"]`),
		"recipient C1":      deliver(tok, "a@b", `["a@b\u0085"]`),
		"recipient long":    deliver(tok, "a@b", `["`+strings.Repeat("a", 321)+`"]`),
		"end without token": `{"type":"end","id":3,"session":"s","token":""}`,
		"notify MAINPID":    `{"type":"notify","id":4,"state":"MAINPID=1"}`,
		"notify FDSTORE":    `{"type":"notify","id":4,"state":"FDSTORE=1"}`,
		"notify empty line": `{"type":"notify","id":4,"state":"READY=1\n"}`,
		"notify status CR":  `{"type":"notify","id":4,"state":"STATUS=a\rb"}`,
		"notify status big": `{"type":"notify","id":4,"state":"STATUS=` + strings.Repeat("x", 201) + `"}`,
		"notify usec text":  `{"type":"notify","id":4,"state":"MONOTONIC_USEC=12a"}`,
		"notify usec empty": `{"type":"notify","id":4,"state":"MONOTONIC_USEC="}`,
		"oversized":         `{"type":"notify","id":4,"state":"` + strings.Repeat("x", MaxFrame) + `"}`,
	} {
		if _, err := decodeRequest([]byte(frame), lim); err == nil {
			t.Errorf("%s: accepted %.80q", name, frame)
		}
	}
}

func TestEncodeRefusesOversized(t *testing.T) {
	if _, err := encode(Hello{Config: strings.Repeat("x", MaxFrame)}); err == nil {
		t.Fatal("an oversized hello was encoded")
	}
	if err := CheckHello(Hello{Config: strings.Repeat("x", MaxFrame)}); err == nil {
		t.Fatal("CheckHello passed an oversized hello")
	}
	if err := CheckHello(Hello{Config: strings.Repeat("x", 32<<10), TLSCert: strings.Repeat("c", 8<<10)}); err != nil {
		t.Fatalf("CheckHello refused a hello that fits: %v", err)
	}
}

func TestSameAddress(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"alice@example.org", "alice@example.org", true},
		{"alice@EXAMPLE.org", "alice@example.ORG", true},
		{"Alice@example.org", "alice@example.org", false},
		{"alice@example.org", "alice@example.org.evil", false},
		{"alice", "alice", true},
		{"alice", "alice@example.org", false},
		{"a@b@example.org", "a@b@EXAMPLE.org", true},
	} {
		if got := sameAddress(tc.a, tc.b); got != tc.same {
			t.Errorf("sameAddress(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
