package e2e

// The mpp client, as the built binary, against the built mppd: mpp send
// over plain TCP and over the mpps listener (listen_tls), mpp sendmail
// under its sendmail name, and a short mpp bench whose report adds up.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testharness"
)

// buildMpp builds ./cmd/mpp into a temporary directory.
func buildMpp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mpp")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mppd/mppd/cmd/mpp").CombinedOutput()
	if err != nil {
		t.Fatalf("building mpp: %v\n%s", err, out)
	}
	return bin
}

// runMpp runs the client (bounded) with a clean environment plus env and
// returns its stdout, stderr and exit status.
func runMpp(t *testing.T, bin, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testharness.StopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("running mpp %v: %v\n%s", args, err, stderr.String())
	return "", "", -1
}

func TestMppClient(t *testing.T) {
	bin := buildMpp(t)
	m := startTLS(t, "mppd.test", "")
	env := []string{"MPP_USER=" + alice.name, "MPP_PASSWORD=" + alice.password}

	t.Run("send over TCP", func(t *testing.T) {
		_, stderr, st := runMpp(t, bin, "To: tcp@example.test\n\n.\nover TCP", env, "send", "-s", m.Addr())
		if st != 0 {
			t.Fatalf("status %d: %s", st, stderr)
		}
		_, body := headerBody(t, waitDelivered(t, m.root, "tcp@example.test", 1)[0])
		if body != ".\nover TCP\n" {
			t.Errorf("body %q", body)
		}
	})

	t.Run("send over TLS", func(t *testing.T) {
		_, stderr, st := runMpp(t, bin, "To: tls@example.test\n\nover TLS\n", env,
			"send", "-v", "-s", "mpps://"+m.tlsAddr, "--ca-file", m.certFile)
		if st != 0 {
			t.Fatalf("status %d: %s", st, stderr)
		}
		if !strings.Contains(stderr, "C: PASS ********\n") || strings.Contains(stderr, alice.password) {
			t.Errorf("trace:\n%s", stderr)
		}
		waitDelivered(t, m.root, "tls@example.test", 1)
		// The daemon's certificate is not trusted without the CA file.
		_, stderr, st = runMpp(t, bin, "To: no@example.test\n\nx\n", env, "send", "-s", "mpps://"+m.tlsAddr)
		if st != 69 || !strings.Contains(stderr, "failed during TLS handshake") {
			t.Errorf("untrusted certificate: %d %q", st, stderr)
		}
	})

	t.Run("sendmail", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "sendmail")
		if err := os.Symlink(bin, link); err != nil {
			t.Fatal(err)
		}
		e := append([]string{"MPP_SERVER=mpps://" + m.tlsAddr, "MPP_CA_FILE=" + m.certFile}, env...)
		_, stderr, st := runMpp(t, link, "To: to@example.test\nSubject: s\n\nbody\n", e,
			"-oi", "to@example.test", "hidden@example.test")
		if st != 0 || stderr != "" {
			t.Fatalf("status %d: %q", st, stderr)
		}
		for _, r := range []string{"to@example.test", "hidden@example.test"} {
			header, _ := headerBody(t, waitDelivered(t, m.root, r, 1)[0])
			if strings.Contains(strings.ToLower(header), "bcc:") {
				t.Errorf("%s: Bcc delivered:\n%s", r, header)
			}
		}
		_, stderr, st = runMpp(t, link, "To: x@example.test\n\nx\n",
			[]string{"MPP_SERVER=" + m.Addr(), "MPP_USER=" + alice.name, "MPP_PASSWORD=wrong"}, "-t")
		if st != 77 || stderr != "mpp: server refused the password: 530 Authentication Failure.\n" {
			t.Errorf("wrong password: %d %q", st, stderr)
		}
	})

	t.Run("bench", func(t *testing.T) {
		stdout, stderr, st := runMpp(t, bin, "", env, "bench", "--json", "-s", "mpps://"+m.tlsAddr, "--ca-file", m.certFile,
			"-c", "2", "-n", "4", "-m", "2", "--to", "bench@example.test", "--server-pid", strconv.Itoa(m.Cmd.Process.Pid))
		if st != 0 {
			t.Fatalf("status %d: %s", st, stderr)
		}
		var r struct {
			Sessions int                                  `json:"sessions"`
			OK       int                                  `json:"sessions_ok"`
			Messages int                                  `json:"messages"`
			Latency  struct{ P50, P90, P99, Max float64 } `json:"session_latency_ms"`
			RSS      int64                                `json:"server_rss_after_kib"`
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("report: %v\n%s", err, stdout)
		}
		l := r.Latency
		if r.Sessions != 4 || r.OK != 4 || r.Messages != 8 || r.RSS <= 0 ||
			!(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("report %+v\n%s", r, stdout)
		}
		waitDelivered(t, m.root, "bench@example.test", 8)
	})
}
