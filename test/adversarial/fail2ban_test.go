//go:build integration

package adversarial

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testenv"
)

// TestFail2banThrottledLog complements test/packaging's filter test with
// the lines the throttle produces: failures from several addresses (each
// with its penalty= field), a relaxed user grammar with names made to look
// like log fields (catalogue case 32), a blocked address refused at
// connect, and a PASS refused by the throttle. fail2ban-regex with the
// packaged filter must find exactly one match per failed login, each for
// the address that really failed.
func TestFail2banThrottledLog(t *testing.T) {
	testenv.NeedCommand(t, "fail2ban-regex") // test/setup.d/60-packaging.sh
	d := startDaemon(t, throttleConfig+`
[session]
user_pattern = '^.+$'
`)
	failures := []struct{ from, user string }{
		{"127.0.0.2", `x"client=192.0.2.1`},
		{"127.0.0.2", `client=192.0.2.2`},
		{"127.0.0.2", `a"client="192.0.2.3"event=auth-failed`},
		{"127.0.1.5", "alice"},
		{"127.0.1.6", `"`},
	}
	var want []string
	for _, f := range failures {
		if l, _ := guess(t, d, f.from, f.user, "wrong-"+f.user); !strings.HasPrefix(l, "530") {
			t.Fatalf("%s %q: %q", f.from, f.user, l)
		}
		want = append(want, f.from)
	}
	// Blocked now: refused at connect, and not a failed login.
	if l, _ := guess(t, d, "127.0.0.2", "alice", "x"); !strings.HasPrefix(l, "451") {
		t.Fatalf("blocked address: %q", l)
	}
	d.WaitLogCount(0, "reason=throttled", 1)

	logFile := filepath.Join(t.TempDir(), "mppd.log")
	if err := os.WriteFile(logFile, []byte(d.Log()), 0o600); err != nil {
		t.Fatal(err)
	}
	filter := "../../packaging/fail2ban/mppd.conf"
	if _, err := os.Stat("../../packaging/fail2ban/filter.d/mppd.conf"); err == nil {
		filter = "../../packaging/fail2ban/filter.d/mppd.conf"
	}
	out, err := exec.Command("fail2ban-regex", "-o", "ip", logFile, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("fail2ban-regex found %v, want %v; log:\n%s", got, want, d.Log())
	}
}
