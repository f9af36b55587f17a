package testharness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// AnyPort is the listen address of every socket a test has mppd bind: the
// kernel picks a free port at bind time, and the harness reads it from the
// daemon's log. A port picked in advance and released could be taken by
// another connection on a busy machine before mppd binds it.
const AnyPort = "127.0.0.1:0"

// EngineKeysTOML sets every [session] and [message] key, for the tests
// that check that config.Load reads each one and that each reaches the
// engine.
const EngineKeysTOML = `
[session]
max_line = 2000
idle_timeout = "1m"
session_timeout = "2m"
min_data_rate = 0
max_errors = 5
max_junk_commands = 9
user_pattern = '^[a-z]+$'
auth_failure_delay = "0s"

[message]
max_size = 2048
max_header_size = 1024
max_recipients = 4
max_received = 6
sender_policy = "reject"
received_client_address = false
staging_dir = "."
memory_threshold = 0
`

// BaseConfig is what every test daemon gets before the test's own TOML:
// loopback with a port the kernel picks, a quick drain, no artificial PASS
// delay, debug logs in text form.
func BaseConfig() map[string]any {
	return map[string]any{
		"hostname":      "mppd.test",
		"listen":        []any{AnyPort},
		"drain_timeout": "5s",
		"log":           map[string]any{"level": "debug", "format": "text"},
		"session":       map[string]any{"auth_failure_delay": "0s"},
	}
}

// MergeTOML merges src into dst, tables recursively; src wins.
func MergeTOML(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				MergeTOML(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// WriteConfig writes BaseConfig overlaid with each of overrides in turn
// (TOML text that may set any key, top-level or in a table, including
// ones the base sets) to a file in a test directory and returns its path.
func WriteConfig(t testing.TB, overrides ...string) string {
	t.Helper()
	cfg := BaseConfig()
	for _, o := range overrides {
		var extra map[string]any
		if err := toml.Unmarshal([]byte(o), &extra); err != nil {
			t.Fatalf("config override does not parse: %v\n%s", err, o)
		}
		MergeTOML(cfg, extra)
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "mppd.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// PasswdfileTOML is the [authn] section for the password-file backend.
func PasswdfileTOML(path, mailDomain string) string {
	return fmt.Sprintf("[authn]\nbackend = \"passwdfile\"\n[authn.passwdfile]\npath = %q\nmail_domain = %q\n", path, mailDomain)
}

// MaildirTOML is the [delivery] section for the maildir backend under
// root.
func MaildirTOML(root string) string {
	return fmt.Sprintf("[delivery]\nbackend = \"maildir\"\n[delivery.maildir]\nroot = %q\n", root)
}
