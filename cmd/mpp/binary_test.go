package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testharness"
)

// The built binary, linked under the name "sendmail", is sendmail: the
// program name picks the mode, the exit status reaches the caller, and
// without a terminal or password it says so instead of hanging.
func TestBinaryAsSendmail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mpp")
	if err := testharness.GoBuild(bin, "github.com/mppd/mppd/cmd/mpp", testharness.Build{}); err != nil {
		t.Fatalf("go build: %v", err)
	}
	link := filepath.Join(dir, "sendmail")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	addr, root := realServer(t, nil)
	run := func(env []string, stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(link, args...)
		// A clean environment: no config file (HOME is empty), the
		// password from the environment, so no prompt is ever needed.
		cmd.Env = append([]string{"HOME=" + dir, "PATH=/usr/bin:/bin"}, env...)
		cmd.Stdin = strings.NewReader(stdin)
		return testharness.RunCmd(t, cmd)
	}
	env := []string{"MPP_SERVER=" + addr, "MPP_USER=" + realUser, "MPP_PASSWORD=" + realPassword}
	out, st := run(env, "Subject: cron\n\nbackup done\n.\nnot sent\n", "-odi", "cron@"+realDomain)
	if st != 0 || out != "" {
		t.Fatalf("status %d, output %q", st, out)
	}
	if _, body := delivered(t, root, "cron@"+realDomain); body != "backup done\n" {
		t.Errorf("body %q", body)
	}
	// Exit statuses as sysexits.h, through the real process.
	bad := []string{"MPP_SERVER=" + addr, "MPP_USER=" + realUser, "MPP_PASSWORD=wrong"}
	if out, st := run(bad, "To: x@"+realDomain+"\n\nx\n", "-t"); st != exNoPerm ||
		out != "mpp: server refused the password: 530 Authentication Failure.\n" {
		t.Errorf("wrong password: %d %q", st, out)
	}
	if out, st := run(env, "", "-bs"); st != exUsage || !strings.Contains(out, "-bs is not supported") {
		t.Errorf("-bs: %d %q", st, out)
	}
	// Called "mpp", the same binary wants a command.
	cmd := exec.Command(bin, "sendmail", "-t")
	cmd.Env = append([]string{"HOME=" + dir}, env...)
	cmd.Stdin = strings.NewReader("To: viampp@" + realDomain + "\n\nx\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("mpp sendmail: %v %q", err, out)
	}
	delivered(t, root, "viampp@"+realDomain)
}
