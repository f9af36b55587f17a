package main

import (
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/internal/testenv"
)

// inNetns is set in the environment of the copy of the test binary that
// runs inside a network namespace of its own.
const inNetns = "MPPD_TEST_IN_NETNS"

// runInNetns runs the test named name again in a copy of the test binary
// inside a fresh network namespace (unshare -n) and reports its result;
// it returns true when the caller is that copy and should do the work.
func runInNetns(t *testing.T, name string) bool {
	if os.Getenv(inNetns) != "" {
		return true
	}
	testenv.NeedRoot(t)
	unshare := testenv.NeedCommand(t, "unshare")
	testenv.NeedCommand(t, "ip")
	cmd := exec.Command(unshare, "-n", os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), inNetns+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a network namespace:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s in a network namespace: %v", name, err)
	}
	return false
}

// setupNetns brings up lo in the test's own namespace with fd00::1 and
// the routes that make every address of fd00::/48 local, so that clients
// can connect from many addresses of a few /64s.
func setupNetns(t *testing.T) {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"-6", "addr", "add", "fd00::1/128", "dev", "lo", "nodad"},
		{"-6", "route", "add", "local", "fd00::/48", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// greetingFrom connects to addr from the local address from (which need
// not be on an interface: IPV6_FREEBIND) and returns the reply code.
func greetingFrom(t *testing.T, addr, from string) string {
	t.Helper()
	d := net.Dialer{
		Timeout:   5 * time.Second,
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("greeting for %s: %v", from, err)
	}
	return string(buf)
}

// TestPerNetworkCap: many addresses of one IPv6 /64 count as one network.
// With max 2 sessions per client and 8 per network, eight addresses of
// fd00:0:0:1::/64 get a session each and the ninth is refused, while
// another /64 and a trusted /64 are served. It runs in a network
// namespace of its own, where fd00::/48 is routed on lo.
func TestPerNetworkCap(t *testing.T) {
	if !runInNetns(t, "TestPerNetworkCap") {
		return
	}
	setupNetns(t)
	trustedNet := netip.MustParsePrefix("fd00:0:0:9::/64")
	h := newCapHarnessOn(t, "[fd00::1]:0", 1000, 2, trustedNet.Contains)
	h.d.mu.Lock()
	h.d.maxPerNetwork, h.d.ipv4Prefix, h.d.ipv6Prefix = 8, 24, 64
	h.d.mu.Unlock()

	for i := 1; i <= 8; i++ {
		if got := greetingFrom(t, h.addr, "fd00:0:0:1::"+itoa(i)); got != "220" {
			t.Fatalf("address %d of the /64: %s", i, got)
		}
	}
	if got := greetingFrom(t, h.addr, "fd00:0:0:1::99"); got != "451" {
		t.Fatalf("ninth address of the /64: %s, want 451", got)
	}
	if got := greetingFrom(t, h.addr, "fd00:0:0:2::1"); got != "220" {
		t.Fatalf("another /64: %s", got)
	}
	for i := 1; i <= 12; i++ {
		if got := greetingFrom(t, h.addr, "fd00:0:0:9::"+itoa(i)); got != "220" {
			t.Fatalf("trusted address %d: %s", i, got)
		}
	}
	h.mu.Lock()
	refused := strings.Join(h.refused, "|")
	h.mu.Unlock()
	if refused != "Too many sessions, try again later" {
		t.Errorf("refusals %q", refused)
	}

	close(h.release)
	testenv.WaitFor(t, 5*time.Second, func() bool {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		return len(h.d.perNet)+len(h.d.perIP) == 0
	}, "per-network counts left behind")
	if got := greetingFrom(t, h.addr, "fd00:0:0:1::99"); got != "220" {
		t.Fatalf("after the sessions ended: %s", got)
	}
}

// itoa writes i as an IPv6 address group.
func itoa(i int) string { return strconv.FormatInt(int64(i), 16) }
