package privsep

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeRequest feeds the monitor's request decoder arbitrary frames.
// It must never panic, and whatever it accepts must satisfy every limit and
// survive a round trip through the encoder unchanged.
func FuzzDecodeRequest(f *testing.F) {
	tok := strings.Repeat("0123456789abcdef", 4)
	for _, seed := range []string{
		`{"type":"auth","id":1,"user":"YWxpY2U=","password":"c2VjcmV0","client":"192.0.2.7","session":"a1b2"}`,
		`{"type":"deliver","id":2,"token":"` + tok + `","session":"s","sender":"a@b","recipients":["c@d"]}`,
		`{"type":"end","id":3,"session":"s","token":"` + tok + `"}`,
		`{"type":"notify","id":4,"state":"READY=1\nSTATUS=ok"}`,
		`{"type":"notify","id":4,"state":"MONOTONIC_USEC=1"}`,
		`{"type":"reply","id":1,"result":"ok"}`,
		`{"type":"auth","ID":1,"USER":"YQ==","Password":"YQ==","client":"::1","session":"s","session":"t"}`,
		`{"type":"deliver","id":1e3}`,
		`{}`, `[]`, `null`, ``, "\xff", `{"type":"auth"`,
	} {
		f.Add([]byte(seed))
	}
	lim := requestLimits{MaxRecipients: 5}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b, lim)
		if err != nil {
			return
		}
		if req.requestID() == 0 {
			t.Fatal("accepted id 0")
		}
		switch r := req.(type) {
		case *authRequest:
			if len(r.User) == 0 || len(r.User) > maxUser || len(r.Password) == 0 || len(r.Password) > maxPassword {
				t.Fatalf("auth limits: %+v", r)
			}
		case *deliverRequest:
			if len(r.Recipients) == 0 || len(r.Recipients) > lim.MaxRecipients || len(r.Token) != tokenLen {
				t.Fatalf("deliver limits: %+v", r)
			}
			for _, a := range append([]string{r.Sender}, r.Recipients...) {
				if a == "" || a[0] == '-' || len(a) > maxAddress || strings.ContainsAny(a, " \t\r\n\x00") {
					t.Fatalf("deliver address %q", a)
				}
			}
		case *notifyRequest:
			if validNotify(r.State) != nil {
				t.Fatal("notify state")
			}
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := decodeRequest(again, lim)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if again2, _ := json.Marshal(req2); string(again2) != string(again) {
			t.Fatalf("round trip changed %s into %s", again, again2)
		}
	})
}
