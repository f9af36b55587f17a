package passwdfile

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

// testParams keep argon2id cheap in tests: the cost under test is the
// format and the logic, not the work factor.
var testParams = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestMain(m *testing.M) {
	hashParams = testParams
	os.Exit(m.Run())
}

func argonHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func bcryptHash4(t testing.TB, pw, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(h[3:]) // bcrypt writes $2a$; the others verify alike
}

func newTestAuth(t *testing.T, content string) (*Backend, string, *testenv.LogBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	a, err := New(config.Passwdfile{Path: path, MailDomain: "Example.ORG"}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.interval = 0 // look at the file on every call
	return a, path, logs
}

func TestParse(t *testing.T) {
	argon := argonHash(t, "pw")
	bc := bcryptHash4(t, "pw", "$2b")
	tests := []struct {
		name    string
		content string
		users   map[string][]string // user -> addresses
		errLine int                 // 0: no error expected
		errText string
	}{
		{name: "empty", content: "", users: map[string][]string{}},
		{name: "comments and blanks", content: "# users\n\n   \n  # indented comment\n", users: map[string][]string{}},
		{name: "argon2id", content: "alice:" + argon + "\n", users: map[string][]string{"alice": {"alice@example.org"}}},
		{name: "bcrypt 2a 2b 2y", content: "a:" + bcryptHash4(t, "pw", "$2a") + "\nb:" + bc + "\nc:" + bcryptHash4(t, "pw", "$2y") + "\n",
			users: map[string][]string{"a": {"a@example.org"}, "b": {"b@example.org"}, "c": {"c@example.org"}}},
		{name: "addresses lowercased, deduplicated, trimmed", content: "bob:" + argon + ":Bob@Example.COM, b.smith@example.com,bob@example.com\n",
			users: map[string][]string{"bob": {"bob@example.com", "b.smith@example.com"}}},
		{name: "empty address field means default", content: "carol:" + bc + ":\n", users: map[string][]string{"carol": {"carol@example.org"}}},
		{name: "CRLF and no final newline", content: "# x\r\ndave:" + argon + "\r\nerin:" + bc,
			users: map[string][]string{"dave": {"dave@example.org"}, "erin": {"erin@example.org"}}},
		{name: "uppercase user gets lowercase default address", content: "Frank:" + bc + "\n", users: map[string][]string{"Frank": {"frank@example.org"}}},

		{name: "no colon", content: "# c\nalice\n", errLine: 2, errText: "want user:hash"},
		{name: "empty user", content: ":" + argon + "\n", errLine: 1, errText: "empty user name"},
		{name: "leading dash", content: "-alice:" + argon + "\n", errLine: 1, errText: "starts with '-'"},
		{name: "space in user", content: "al ice:" + argon + "\n", errLine: 1, errText: "space or control"},
		{name: "control char in user", content: "al\x01ice:" + argon + "\n", errLine: 1, errText: "space or control"},
		{name: "duplicate", content: "alice:" + argon + "\n\nalice:" + bc + "\n", errLine: 3, errText: "already defined on line 1"},
		{name: "unknown scheme", content: "alice:" + argon + "\nbob:$6$saltsalt$abcdef\n", errLine: 2, errText: `unknown hash scheme "$6$"`},
		{name: "plain text", content: "alice:secret\n", errLine: 1, errText: "unknown hash scheme"},
		{name: "empty hash", content: "alice:\n", errLine: 1, errText: "empty password hash"},
		{name: "argon2i not id", content: "alice:" + strings.Replace(argon, "argon2id", "argon2i", 1) + "\n", errLine: 1, errText: "unknown hash scheme"},
		{name: "argon2id wrong version", content: "alice:" + strings.Replace(argon, "v=19", "v=16", 1) + "\n", errLine: 1, errText: "version"},
		{name: "argon2id params out of order", content: "alice:" + strings.Replace(argon, "m=64,t=1", "t=1,m=64", 1) + "\n", errLine: 1, errText: "parameter m="},
		{name: "argon2id huge memory", content: "alice:" + strings.Replace(argon, "m=64,", "m=4194304,", 1) + "\n", errLine: 1, errText: "above the limit"},
		{name: "argon2id bad base64", content: "alice:" + argon[:len(argon)-3] + "!!!\n", errLine: 1, errText: "base64"},
		{name: "argon2id truncated", content: "alice:$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ\n", errLine: 1, errText: "want $argon2id$"},
		{name: "bcrypt truncated", content: "alice:" + bc[:50] + "\n", errLine: 1, errText: "bcrypt"},
		{name: "bcrypt cost too high", content: "alice:" + bc[:4] + "31" + bc[6:] + "\n", errLine: 1, errText: "above the limit"},
		{name: "bad address", content: "alice:" + argon + ":alice@example.com,not-an-address\n", errLine: 1, errText: "no '@'"},
		{name: "address with leading dash", content: "alice:" + argon + ":-oQ@example.com\n", errLine: 1, errText: "starts with '-'"},
		{name: "address with space", content: "alice:" + argon + ":a b@example.com\n", errLine: 1, errText: "space"},
		{name: "address starting with pipe", content: "alice:" + argon + ":|cmd@example.com\n", errLine: 1, errText: "'|'"},
		{name: "empty address in list", content: "alice:" + argon + ":a@example.com,,b@example.com\n", errLine: 1, errText: "empty address"},
		{name: "user not usable as address", content: "al\"ice:" + argon + "\n", errLine: 1, errText: "not a usable address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := parse("/etc/mppd/passwd", []byte(tt.content), "example.org")
			if tt.errLine != 0 {
				var perr *ParseError
				if !errors.As(err, &perr) {
					t.Fatalf("err = %v, want a *ParseError", err)
				}
				if perr.Line != tt.errLine || perr.File != "/etc/mppd/passwd" || !strings.Contains(perr.Msg, tt.errText) {
					t.Fatalf("err = %v, want line %d and %q", err, tt.errLine, tt.errText)
				}
				if strings.Contains(err.Error(), argon[len(argon)-20:]) || strings.Contains(err.Error(), bc[len(bc)-20:]) {
					t.Errorf("error quotes a hash: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.users) != len(tt.users) {
				t.Fatalf("got %d users, want %d", len(tab.users), len(tt.users))
			}
			for u, addrs := range tt.users {
				e := tab.users[u]
				if e == nil {
					t.Fatalf("user %q missing", u)
				}
				if !slices.Equal(e.addrs, addrs) {
					t.Errorf("%s: addresses %q, want %q", u, e.addrs, addrs)
				}
				if !e.hash.verify([]byte("pw")) || e.hash.verify([]byte("pW")) {
					t.Errorf("%s: hash does not verify as expected", u)
				}
			}
			if tab.dummy == nil || tab.dummy.verify([]byte("pw")) {
				t.Error("decoy missing or matching")
			}
		})
	}
}

func TestDecoyHasTheMostCommonCost(t *testing.T) {
	bc := bcryptHash4(t, "pw", "$2b")
	content := "a:" + argonHash(t, "x") + "\nb:" + bc + "\nc:" + bcryptHash4(t, "y", "$2a") + "\n"
	tab, err := parse("f", []byte(content), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tab.dummy.kind(), "bcrypt cost=4"; got != want {
		t.Errorf("decoy kind %q, want %q", got, want)
	}
	// A bcrypt decoy really runs at the cost it claims.
	d, err := (&bcryptHash{cost: 12}).decoy()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost(d.(*bcryptHash).hash); err != nil || c != 12 {
		t.Errorf("decoy cost %d, %v; want 12", c, err)
	}
	tab, err = parse("f", nil, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tab.dummy.kind(), (&argon2idHash{p: testParams}).kind(); got != want {
		t.Errorf("empty file decoy %q, want %q", got, want)
	}
}

func TestHashPasswordFormat(t *testing.T) {
	h, err := HashPasswordWith("correct horse", DefaultArgon2Params())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not carry the default parameters", h)
	}
	v, err := parseHash(h)
	if err != nil {
		t.Fatal(err)
	}
	if !v.verify([]byte("correct horse")) || v.verify([]byte("correct horse ")) {
		t.Error("round trip failed")
	}
	h2, _ := HashPasswordWith("correct horse", DefaultArgon2Params())
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if _, err := HashPasswordWith("x", Argon2Params{Memory: 1 << 30, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}); err == nil {
		t.Error("absurd memory accepted")
	}
}

func TestAuthenticate(t *testing.T) {
	content := "# test users\n" +
		"alice:" + argonHash(t, "alice-pw") + "\n" +
		"bob:" + bcryptHash4(t, "bob-pw", "$2y") + ":Bob@Example.com,bob.b@example.net\n"
	a, _, logs := newTestAuth(t, content)
	ctx := context.Background()
	tests := []struct {
		user, pw string
		reason   string // "" = success
		addrs    []string
	}{
		{"alice", "alice-pw", "", []string{"alice@example.org"}},
		{"bob", "bob-pw", "", []string{"bob@example.com", "bob.b@example.net"}},
		{"alice", "bob-pw", "bad-password", nil},
		{"alice", "alice-PW", "bad-password", nil},
		{"alice", "", "bad-password", nil},
		{"bob", strings.Repeat("x", 512), "bad-password", nil},
		{"carol", "alice-pw", "unknown-user", nil},
		{"Alice", "alice-pw", "unknown-user", nil},
	}
	for _, tt := range tests {
		id, err := a.Authenticate(ctx, authn.Request{User: tt.user, Password: tt.pw, Client: "127.0.0.1"})
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.user, err)
				continue
			}
			if id.Login != tt.user || !slices.Equal(id.Addresses, tt.addrs) || id.Account != "" {
				t.Errorf("%s: identity %+v", tt.user, id)
			}
			continue
		}
		if !authn.IsBadCredentials(err) || authn.Reason(err) != tt.reason {
			t.Errorf("%s/%q: err = %v, want rejected %s", tt.user, tt.pw, err, tt.reason)
		}
	}
	// The identity is a copy: changing it does not change the table.
	id, _ := a.Authenticate(ctx, authn.Request{User: "bob", Password: "bob-pw"})
	id.Addresses[0] = "mallory@example.com"
	id, _ = a.Authenticate(ctx, authn.Request{User: "bob", Password: "bob-pw"})
	if id.Addresses[0] != "bob@example.com" {
		t.Error("identity shares the table's address slice")
	}
	for _, secret := range []string{"alice-pw", "bob-pw", "alice-PW"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains a password: %s", logs.String())
		}
	}
}

func TestAuthenticateContext(t *testing.T) {
	a, _, _ := newTestAuth(t, "alice:"+argonHash(t, "pw")+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Authenticate(ctx, authn.Request{User: "alice", Password: "pw"})
	var un *authn.UnavailableError
	if !errors.As(err, &un) || un.Reason != "canceled" {
		t.Errorf("cancelled: err = %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = a.Authenticate(ctx, authn.Request{User: "alice", Password: "pw"})
	if !errors.As(err, &un) || un.Reason != "timeout" {
		t.Errorf("deadline: err = %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(config.Passwdfile{Path: filepath.Join(dir, "missing"), MailDomain: "example.org"}, nil); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("alice:plain\n"), 0o600)
	_, err := New(config.Passwdfile{Path: bad, MailDomain: "example.org"}, nil)
	if err == nil || !strings.Contains(err.Error(), bad+":1:") {
		t.Errorf("broken file: err = %v, want file:line", err)
	}
	if _, err := New(config.Passwdfile{Path: dir, MailDomain: "example.org"}, nil); err == nil {
		t.Error("a directory accepted as the file")
	}
}

func TestPermissionWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, []byte("alice:"+argonHash(t, "pw")+"\n"), 0o600)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	a, err := New(config.Passwdfile{Path: path, MailDomain: "example.org"}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("a readable file must load: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "readable by group or others") {
		t.Errorf("no warning: %s", logs.String())
	}
	if !strings.Contains(a.String(), path) {
		t.Errorf("String() = %q", a.String())
	}
}

func TestReload(t *testing.T) {
	a, path, logs := newTestAuth(t, "alice:"+argonHash(t, "old")+"\n")
	ctx := context.Background()
	login := func(user, pw string) error {
		_, err := a.Authenticate(ctx, authn.Request{User: user, Password: pw})
		return err
	}
	if err := login("alice", "old"); err != nil {
		t.Fatal(err)
	}

	// Replaced the way mppd passwd does it.
	if err := SetPassword(path, "alice", "new", nil); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "bob", "bob-pw", nil); err != nil {
		t.Fatal(err)
	}
	if err := login("alice", "new"); err != nil {
		t.Errorf("after change: %v", err)
	}
	if err := login("alice", "old"); authn.Reason(err) != "bad-password" {
		t.Errorf("old password still works: %v", err)
	}
	if err := login("bob", "bob-pw"); err != nil {
		t.Errorf("new user: %v", err)
	}

	// A broken file keeps the previous entries and logs an error once.
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(good, "carol:plaintext\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := login("alice", "new"); err != nil {
			t.Errorf("broken reload lost the old entries: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "does not parse"); n != 1 {
		t.Errorf("parse error logged %d times, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), path+":3:") {
		t.Errorf("log does not name the line: %s", logs.String())
	}

	// Fixed in place (same inode): picked up.
	if err := os.WriteFile(path, append(good, "carol:"+argonHash(t, "carol-pw")+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := login("carol", "carol-pw"); err != nil {
		t.Errorf("fixed file not reloaded: %v", err)
	}

	// Gone: unavailable, not bad credentials; back: works again.
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	err := login("alice", "new")
	var un *authn.UnavailableError
	if !errors.As(err, &un) || un.Reason != "file-unreadable" {
		t.Errorf("missing file: err = %v, want unavailable", err)
	}
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	if err := login("alice", "new"); err != nil {
		t.Errorf("file back: %v", err)
	}
}

func TestReloadInterval(t *testing.T) {
	a, path, _ := newTestAuth(t, "alice:"+argonHash(t, "old")+"\n")
	a.interval = time.Hour
	a.checked = time.Now()
	if err := SetPassword(path, "alice", "new", nil); err != nil {
		t.Fatal(err)
	}
	// Within the interval the file is not looked at.
	if _, err := a.Authenticate(context.Background(), authn.Request{User: "alice", Password: "old"}); err != nil {
		t.Errorf("file looked at before the interval: %v", err)
	}
	a.mu.Lock()
	a.checked = time.Now().Add(-2 * time.Hour)
	a.mu.Unlock()
	if _, err := a.Authenticate(context.Background(), authn.Request{User: "alice", Password: "new"}); err != nil {
		t.Errorf("file not looked at after the interval: %v", err)
	}
}

func TestConcurrentAuthenticate(t *testing.T) {
	a, path, _ := newTestAuth(t, "alice:"+argonHash(t, "pw")+"\n")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				// Rewriting the file while others log in.
				SetPassword(path, "bob", "x", nil)
			}
			if _, err := a.Authenticate(context.Background(), authn.Request{User: "alice", Password: "pw"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkAuthenticate measures one login at the default argon2id cost, for
// a known and an unknown user: the two should cost about the same (the
// decoy hash), which the figures show without a wall-clock assertion.
func BenchmarkAuthenticate(b *testing.B) {
	h, err := HashPasswordWith("pw", DefaultArgon2Params())
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "passwd")
	os.WriteFile(path, []byte("alice:"+h+"\n"), 0o600)
	a, err := New(config.Passwdfile{Path: path, MailDomain: "example.org"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, user := range []string{"alice", "nobody"} {
		b.Run(user, func(b *testing.B) {
			for b.Loop() {
				a.Authenticate(context.Background(), authn.Request{User: user, Password: "wrong"})
			}
		})
	}
}
