package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/internal/config"
)

// checkPasswdUser checks, through the backend, that user logs in from the
// password file at path with pw and may send as addrs (the backend's
// mail_domain is example.org).
func checkPasswdUser(t *testing.T, path, user, pw string, addrs ...string) {
	t.Helper()
	a, err := passwdfile.New(config.Passwdfile{Path: path, MailDomain: "example.org"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(context.Background(), authn.Request{User: user, Password: pw})
	if err != nil {
		t.Fatalf("%s with %q: %v", user, pw, err)
	}
	if !slices.Equal(id.Addresses, addrs) {
		t.Errorf("%s: addresses %q, want %q", user, id.Addresses, addrs)
	}
}

// TestPasswdCommand: `mppd passwd` after its own flags (splitPasswdArgs).
func TestPasswdCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	run := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := passwd(args, passwdEnv{Path: path, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
		return out.String() + errOut.String(), err
	}
	if out, err := run("s3cret\n", "alice"); err != nil || !strings.Contains(out, "password for alice set in "+path) {
		t.Fatalf("add: %v %q", err, out)
	}
	checkPasswdUser(t, path, "alice", "s3cret", "alice@example.org")

	if _, err := run("other\r\n", "-address", "Alice@Example.com,al@example.com", "alice"); err != nil {
		t.Fatal(err)
	}
	checkPasswdUser(t, path, "alice", "other", "alice@example.com", "al@example.com")

	if _, err := run("third", "--address=", "alice"); err != nil { // no final newline
		t.Fatal(err)
	}
	checkPasswdUser(t, path, "alice", "third", "alice@example.org")

	other := filepath.Join(dir, "other")
	if _, err := run("pw\n", "-file", other, "bob"); err != nil {
		t.Fatal(err)
	}
	checkPasswdUser(t, other, "bob", "pw", "bob@example.org")

	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"pw\n", nil, "exactly one USER"},
		{"pw\n", []string{"a", "b"}, "exactly one USER"},
		{"pw\n", []string{"--", "-root"}, "starts with '-'"},
		{"", []string{"alice"}, "no password"},
		{"\n", []string{"alice"}, "empty password"},
		{strings.Repeat("x", 10000), []string{"alice"}, "longer than 512"},
		{"pw\n", []string{"-address", "nope", "alice"}, "no '@'"},
		{"pw\n", []string{"-bogus", "alice"}, "flag provided but not defined"},
	} {
		out, err := run(tc.stdin, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%q: err = %v, output %q; want %q", tc.args, err, out, tc.want)
		}
	}
	if _, err := run("", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	var errOut bytes.Buffer
	err := passwd([]string{"alice"}, passwdEnv{Stdin: strings.NewReader("pw\n"), Stdout: &errOut, Stderr: &errOut})
	if err == nil || !strings.Contains(err.Error(), "no password file") {
		t.Errorf("no path: %v", err)
	}
}

// TestPasswdParallelRuns: several `mppd passwd` runs on one file at once
// each add their user; the lock beside the file keeps any update from
// being lost to another run's rename.
func TestPasswdParallelRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	const runs = 8
	var wg sync.WaitGroup
	status := make([]int, runs)
	stderr := make([]bytes.Buffer, runs)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user%d", i)
			var stdout bytes.Buffer
			status[i] = run([]string{"passwd", "--file", path, user}, strings.NewReader("pw-"+user+"\n"), &stdout, &stderr[i])
		}()
	}
	wg.Wait()
	for i := range runs {
		if status[i] != exitOK {
			t.Fatalf("run %d: status %d: %s", i, status[i], stderr[i].String())
		}
	}
	for i := range runs {
		user := fmt.Sprintf("user%d", i)
		checkPasswdUser(t, path, user, "pw-"+user, user+"@example.org")
	}
}
