package dialogue

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse("x", []byte(`# case 0: an example
# second line

config: [session]
c: USER alice
s: 250
c! "PASS a\x00b\n"
s: 501 Argument
c* 3 "NOOP\r\n"
s: close
deliveries: 2
log: event=protocol-error
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.About != "case 0: an example\nsecond line\n" || len(s.Steps) != 6 || s.Deliveries != 2 || s.Logs[0] != "event=protocol-error" || s.Config[0] != "[session]" {
		t.Fatalf("%+v", s)
	}
	if got := string(s.ClientBytes(0)); got != "USER alice\r\nPASS a\x00b\nNOOP\r\nNOOP\r\nNOOP\r\n" {
		t.Fatalf("client bytes %q", got)
	}
	if got := string(s.ClientBytes(6)); got != "USER aPASS aNOOP\r\n" {
		t.Fatalf("cut client bytes %q", got)
	}
	if s.Steps[1].Code != 250 || s.Steps[3].Text != "Argument" || s.Steps[5].Kind != Closed {
		t.Fatalf("%+v", s.Steps)
	}
	for _, bad := range []string{"c!", "s: 2x0", "c! unquoted", "c* 0 \"x\"", "frob: x", "c* 100000000 \"xx\""} {
		if _, err := Parse("bad", []byte(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
