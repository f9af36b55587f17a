package passwdfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// readTable parses path the way the daemon would.
func readTable(t *testing.T, path string) *table {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parse(path, data, "example.org")
	if err != nil {
		t.Fatalf("file written by SetPassword does not parse: %v\n%s", err, data)
	}
	return tab
}

func checkUser(t *testing.T, tab *table, user, pw string, addrs ...string) {
	t.Helper()
	e := tab.users[user]
	if e == nil {
		t.Fatalf("user %q missing", user)
	}
	if !e.hash.verify([]byte(pw)) {
		t.Errorf("%s: password %q does not verify", user, pw)
	}
	if !slices.Equal(e.addrs, addrs) {
		t.Errorf("%s: addresses %q, want %q", user, e.addrs, addrs)
	}
}

func TestSetPasswordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")

	// Add to a file that does not exist yet: created 0600.
	if err := SetPassword(path, "alice", "pw1", nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %04o, want 0600", fi.Mode().Perm())
	}
	checkUser(t, readTable(t, path), "alice", "pw1", "alice@example.org")

	// Comments, blank lines, odd spacing and other users survive.
	data, _ := os.ReadFile(path)
	bobLine := "bob:" + bcryptHash4(t, "bob-pw", "$2b") + ":bob@example.com"
	prefix := "# mppd users\n\n"
	suffix := "  # trailing comment\n" + bobLine + "\n"
	os.WriteFile(path, []byte(prefix+string(data)+suffix), 0o600)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	// Add a second user with addresses.
	if err := SetPassword(path, "carol", "carol-pw", []string{"Carol@Example.com", "c@example.net"}); err != nil {
		t.Fatal(err)
	}
	// Replace alice, giving her addresses.
	if err := SetPassword(path, "alice", "pw2", []string{"alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	// Change alice's password again; nil keeps her addresses.
	if err := SetPassword(path, "alice", "pw3", nil); err != nil {
		t.Fatal(err)
	}
	tab := readTable(t, path)
	checkUser(t, tab, "alice", "pw3", "alice@example.com")
	checkUser(t, tab, "bob", "bob-pw", "bob@example.com")
	checkUser(t, tab, "carol", "carol-pw", "carol@example.com", "c@example.net")

	got, _ := os.ReadFile(path)
	lines := strings.Split(string(got), "\n")
	if lines[0] != "# mppd users" || lines[1] != "" || !strings.HasPrefix(lines[2], "alice:$argon2id$") ||
		lines[3] != "  # trailing comment" || lines[4] != bobLine || !strings.HasPrefix(lines[5], "carol:") {
		t.Errorf("lines not kept in place:\n%s", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("existing mode not kept: %04o", fi.Mode().Perm())
	}

	// An empty, non-nil list removes the addresses.
	if err := SetPassword(path, "carol", "carol-pw", []string{}); err != nil {
		t.Fatal(err)
	}
	checkUser(t, readTable(t, path), "carol", "carol-pw", "carol@example.org")

	// No temporary files left behind: the file and its lock file only.
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"passwd", "passwd.lock"}) {
		t.Errorf("directory holds %q, want only the file and its lock file", names)
	}
}

func TestSetPasswordDuplicateLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	h := argonHash(t, "x")
	os.WriteFile(path, []byte("alice:"+h+"\nbob:"+h+"\nalice:"+h+":a@example.com\n"), 0o600)
	if err := SetPassword(path, "alice", "y", nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "alice:"); n != 1 {
		t.Errorf("%d lines for alice, want 1:\n%s", n, data)
	}
	checkUser(t, readTable(t, path), "alice", "y", "alice@example.org")
}

func TestSetPasswordSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	link := filepath.Join(dir, "passwd")
	os.WriteFile(target, nil, 0o600)
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(link, "alice", "pw", nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v", err)
	}
	checkUser(t, readTable(t, target), "alice", "pw", "alice@example.org")
}

func TestSetPasswordRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	tests := []struct {
		user, pw string
		addrs    []string
		want     string
	}{
		{"", "pw", nil, "empty user"},
		{"-rf", "pw", nil, "starts with '-'"},
		{"a:b", "pw", nil, "contains ':'"},
		{"#a", "pw", nil, "starts with '#'"},
		{"a\nb", "pw", nil, "control"},
		{"a b", "pw", nil, "space"},
		{"alice", "", nil, "empty password"},
		{"alice", "a\nb", nil, "CR or LF"},
		{"alice", "a\x00b", nil, "NUL"},
		{"alice", strings.Repeat("p", 513), nil, "longer than 512"},
		{"alice", "pw", []string{"bad"}, "no '@'"},
		{"alice", "pw", []string{"a@example.com", "-x@example.com"}, "starts with '-'"},
		{"alice", "pw", []string{"a@exa_mple.com"}, "domain contains"},
		{"alice", "pw", []string{""}, "empty address"},
	}
	for _, tt := range tests {
		err := SetPassword(path, tt.user, tt.pw, tt.addrs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SetPassword(%q, %q, %q) = %v, want %q", tt.user, tt.pw, tt.addrs, err, tt.want)
		}
		if strings.Contains(err.Error(), tt.pw) && tt.pw != "" && tt.pw != "pw" {
			t.Errorf("error quotes the password: %v", err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused call created the file")
	}
}

func TestSetPasswordKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: only root can give a file another owner; run as root to check that SetPassword keeps it")
	}
	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, nil, 0o640)
	if err := os.Chown(path, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "alice", "pw", nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 4321 || st.Gid != 4322 || fi.Mode().Perm() != 0o640 {
		t.Errorf("owner %d:%d mode %04o, want 4321:4322 0640", st.Uid, st.Gid, fi.Mode().Perm())
	}
}

// TestSetPasswordParallelRuns runs SetPassword in several processes at
// once on one file, as several `mppd passwd` runs would: every update must
// survive, none may be lost to another run's rename.
func TestSetPasswordParallelRuns(t *testing.T) {
	if os.Getenv("MPPD_PASSWD_HELPER_FILE") != "" {
		t.Skip("running as a helper process")
	}
	path := filepath.Join(t.TempDir(), "passwd")
	if err := SetPassword(path, "first", "pw-first", nil); err != nil {
		t.Fatal(err)
	}
	const runs = 12
	cmds := make([]*exec.Cmd, runs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSetPasswordHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MPPD_PASSWD_HELPER_FILE="+path, fmt.Sprintf("MPPD_PASSWD_HELPER_USER=user%d", i))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("helper %d: %s", i, out.String())
			}
		})
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v", i, err)
		}
	}
	tab := readTable(t, path)
	checkUser(t, tab, "first", "pw-first", "first@example.org")
	for i := range runs {
		user := fmt.Sprintf("user%d", i)
		checkUser(t, tab, user, "pw-"+user, user+"@example.org")
	}
}

// TestSetPasswordHelper is one run of TestSetPasswordParallelRuns, in a
// process of its own; it does nothing when run as a test.
func TestSetPasswordHelper(t *testing.T) {
	path, user := os.Getenv("MPPD_PASSWD_HELPER_FILE"), os.Getenv("MPPD_PASSWD_HELPER_USER")
	if path == "" {
		return
	}
	if err := SetPassword(path, user, "pw-"+user, nil); err != nil {
		t.Fatal(err)
	}
}
