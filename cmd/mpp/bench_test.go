package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// runBench runs mpp bench with --json and decodes its report.
func runBench(t *testing.T, env map[string]string, args ...string) (*benchReport, int, *testCLI) {
	t.Helper()
	c := newTestCLI("", env)
	st := c.run(append([]string{"bench", "--json"}, args...))
	if st != exOK && st != 1 {
		t.Fatalf("status %d; stderr %q", st, c.stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(c.stdout.String()), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, c.stdout.String())
	}
	return &rep, st, c
}

// checkAddsUp checks the report's own arithmetic: counts match, rates
// follow from counts and time, percentiles are ordered.
func checkAddsUp(t *testing.T, r *benchReport) {
	t.Helper()
	if r.SessionsOK+r.SessionsFailed != r.Sessions {
		t.Errorf("ok %d + failed %d != sessions %d", r.SessionsOK, r.SessionsFailed, r.Sessions)
	}
	nErr := 0
	for _, n := range r.Errors {
		nErr += n
	}
	if nErr != r.SessionsFailed {
		t.Errorf("errors %v add up to %d, failed sessions %d", r.Errors, nErr, r.SessionsFailed)
	}
	if r.Octets != int64(r.Messages)*int64(r.Size) {
		t.Errorf("octets %d != messages %d × size %d", r.Octets, r.Messages, r.Size)
	}
	if r.Elapsed <= 0 {
		t.Fatalf("elapsed %v", r.Elapsed)
	}
	if got := float64(r.SessionsOK) / r.Elapsed; !near(got, r.SessionsPerSec) {
		t.Errorf("sessions/s %v, counts give %v", r.SessionsPerSec, got)
	}
	if got := float64(r.Messages) / r.Elapsed; !near(got, r.MessagesPerSec) {
		t.Errorf("messages/s %v, counts give %v", r.MessagesPerSec, got)
	}
	l := r.LatencyMs
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("percentiles out of order: %+v", l)
	}
	if r.SessionsOK > 0 && l.P50 <= 0 {
		t.Errorf("zero latency with %d sessions: %+v", r.SessionsOK, l)
	}
}

func near(a, b float64) bool {
	d := a - b
	return d < 1e-6*max(1, a) && d > -1e-6*max(1, a)
}

// A short bounded run against the real engine: every session and message
// counted, every message delivered.
func TestBenchCountRun(t *testing.T) {
	addr, root := realServer(t, nil)
	env := map[string]string{"MPP_PASSWORD": realPassword}
	rcpt := "bench@" + realDomain
	r, st, _ := runBench(t, env, "-s", addr, "-u", realUser, "-c", "3", "-n", "7", "-m", "2", "--size", "2000", "--to", rcpt,
		"--server-pid", strconv.Itoa(os.Getpid()))
	if st != exOK {
		t.Errorf("status %d", st)
	}
	checkAddsUp(t, r)
	if r.Sessions != 7 || r.SessionsOK != 7 || r.Messages != 14 || r.Size != 2000 || r.Concurrency != 3 || r.PerSession != 2 {
		t.Errorf("report %+v", r)
	}
	if len(r.Errors) != 0 {
		t.Errorf("errors %v", r.Errors)
	}
	// The server here is this process: /proc was read.
	if r.ServerPID != os.Getpid() || r.RSSBeforeKiB <= 0 || r.RSSAfterKiB <= 0 {
		t.Errorf("server figures: %+v", r)
	}
	files, _ := filepath.Glob(filepath.Join(root, rcpt, "new", "*"))
	if len(files) != 14 {
		t.Errorf("%d messages delivered, want 14", len(files))
	}
	if r.DataMBps <= 0 {
		t.Errorf("data MB/s %v", r.DataMBps)
	}
}

// A duration run stops by itself; -m 0 only logs in.
func TestBenchDurationRun(t *testing.T) {
	addr, _ := realServer(t, nil)
	r, st, _ := runBench(t, map[string]string{"MPP_PASSWORD": realPassword},
		"-s", addr, "-u", realUser, "-c", "2", "-d", "200ms", "-m", "0")
	if st != exOK {
		t.Errorf("status %d", st)
	}
	checkAddsUp(t, r)
	if r.Sessions < 1 || r.Messages != 0 || r.Octets != 0 || r.Size != 0 {
		t.Errorf("report %+v", r)
	}
}

// Failures are counted by reply and step, and make the status 1.
func TestBenchCountsErrors(t *testing.T) {
	addr, _ := realServer(t, nil)
	r, st, _ := runBench(t, map[string]string{"MPP_PASSWORD": "wrong"},
		"-s", addr, "-u", realUser, "-c", "2", "-n", "4", "--to", "x@"+realDomain)
	if st != 1 {
		t.Errorf("status %d, want 1", st)
	}
	checkAddsUp(t, r)
	if r.SessionsFailed != 4 || r.Errors["530 PASS"] != 4 || r.Messages != 0 {
		t.Errorf("report %+v", r)
	}
	// A refused message counts under its own step.
	srv := fakeServer(t, map[string]string{"message": "550 Error."})
	r, _, _ = runBench(t, map[string]string{"MPP_PASSWORD": "pw"},
		"-s", srv.Addr(), "-u", "alice", "-n", "3", "-m", "2", "--to", "x@y.test")
	checkAddsUp(t, r)
	if r.Errors["550 message"] != 3 || r.Messages != 0 {
		t.Errorf("report %+v", r)
	}
	// No server: connection errors.
	r, _, _ = runBench(t, map[string]string{"MPP_PASSWORD": "pw"},
		"-s", testharness.ClosedAddr(t), "-u", "alice", "-n", "2", "--to", "x@y.test")
	checkAddsUp(t, r)
	if r.Errors["connection dial"] != 2 {
		t.Errorf("report %+v", r)
	}
}

// --server-pid given twice (mppd's monitor and engine) sums both
// processes: here this process and its parent, which both have CPU time
// and memory to show; the text report names both.
func TestBenchServerPIDsSummed(t *testing.T) {
	addr, _ := realServer(t, nil)
	self, parent := os.Getpid(), os.Getppid()
	env := map[string]string{"MPP_PASSWORD": realPassword}
	args := []string{"-s", addr, "-u", realUser, "-n", "3", "-m", "1", "--to", "bench@" + realDomain,
		"--server-pid", strconv.Itoa(self), "--server-pid", strconv.Itoa(parent)}
	r, st, _ := runBench(t, env, args...)
	if st != exOK {
		t.Fatalf("status %d", st)
	}
	if r.ServerPID != self || len(r.ServerPIDs) != 2 || r.ServerPIDs[1] != parent {
		t.Fatalf("pids %d %v, want %d then %d", r.ServerPID, r.ServerPIDs, self, parent)
	}
	if own := readProc(self); r.RSSAfterKiB <= own.rssKiB {
		t.Errorf("RSS after %d KiB is not the sum (this process alone: %d KiB)", r.RSSAfterKiB, own.rssKiB)
	}
	c := newTestCLI("", env)
	if st := c.run(append([]string{"bench"}, args...)); st != exOK {
		t.Fatalf("status %d: %q", st, c.stderr.String())
	}
	want := fmt.Sprintf("server:   pids %d %d (summed), RSS ", self, parent)
	if out := c.stdout.String(); !strings.Contains(out, want) || !strings.Contains(out, "ms in children (") {
		t.Errorf("report lacks %q:\n%s", want, out)
	}
}

// --idle holds sessions that only read the greeting and reads the
// server's memory from /proc.
func TestBenchIdle(t *testing.T) {
	addr, _ := realServer(t, nil)
	r, st, _ := runBench(t, nil, "-s", addr, "--idle", "20", "--hold", "10ms", "--server-pid", strconv.Itoa(os.Getpid()))
	if st != exOK {
		t.Errorf("status %d", st)
	}
	checkAddsUp(t, r)
	if r.Idle != 20 || r.IdleOpened != 20 || r.SessionsOK != 20 || r.RSSAfterKiB <= 0 || r.ServerPID != os.Getpid() {
		t.Errorf("report %+v", r)
	}
	// The text report says the same.
	c := newTestCLI("", nil)
	if st := c.run([]string{"bench", "-s", addr, "--idle", "5", "--hold", "10ms", "--server-pid", strconv.Itoa(os.Getpid())}); st != exOK {
		t.Fatalf("status %d: %q", st, c.stderr.String())
	}
	testenv.Contains(t, c.stdout.String(), "5 idle sessions\n", "opened:   5 of 5 in ", "errors:   none\n", "KiB per idle session\n")
}

// The bench speaks TLS too, and the text report carries the figures.
func TestBenchTLSText(t *testing.T) {
	addr, _, caFile := realServerTLS(t)
	c := newTestCLI("", map[string]string{"MPP_PASSWORD": realPassword})
	st := c.run([]string{"bench", "-s", "mpps://" + addr, "--ca-file", caFile, "-u", realUser, "-n", "3", "-c", "2", "--to", "t@" + realDomain})
	if st != exOK {
		t.Fatalf("status %d: %q", st, c.stderr.String())
	}
	testenv.Contains(t, c.stdout.String(), "(TLS), 2 concurrent, 1 message(s) of 1024 octets per session\n",
		"sessions: 3 (3 ok, 0 failed) in ", "messages: 3 accepted, 3072 octets: ", "latency:  p50 ", "errors:   none\n")
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-c", "0"}, "-c must be 1 to"},
		{[]string{"-n", "1"}, "--to is required"},
		{[]string{"-d", "2h", "-m", "0"}, "-d must be at most 1h0m0s"},
		{[]string{"--idle", "1000000"}, "--idle must be 0 to"},
		{[]string{"extra"}, "bench takes no arguments"},
	} {
		c := newTestCLI("", nil)
		if st := c.run(append([]string{"bench"}, tc.args...)); st != exUsage || !strings.Contains(c.stderr.String(), tc.want) {
			t.Errorf("%q: %d %q, want %q", tc.args, st, c.stderr.String(), tc.want)
		}
	}
}

func TestBenchMessageAndPercentiles(t *testing.T) {
	for _, size := range []int{0, 10, 40, 41, 77, 1024, 10 << 20} {
		m := benchMessage("x@y.test", size)
		hdr := len("To: x@y.test\nSubject: mpp bench\n\n")
		if len(m) != max(size, hdr) || m[len(m)-1] != '\n' {
			t.Errorf("size %d: got %d octets, last %q", size, len(m), m[len(m)-1])
		}
	}
	l := percentiles([]float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6})
	if l != (latencies{P50: 5, P90: 9, P99: 10, Max: 10}) {
		t.Errorf("percentiles %+v", l)
	}
	if percentiles(nil) != (latencies{}) {
		t.Error("percentiles of nothing")
	}
}
