package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfigFile writes a config file with mode and returns its path and
// an environment that points XDG_CONFIG_HOME at it.
func writeConfigFile(t *testing.T, content string, mode os.FileMode) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mpp", "config")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask may have cut it
		t.Fatal(err)
	}
	return path, map[string]string{"XDG_CONFIG_HOME": dir}
}

// The config file alone is enough to post: server, port, user and
// password from $XDG_CONFIG_HOME/mpp/config, in msmtp's "key value" form.
func TestSendFromConfigFile(t *testing.T) {
	addr, root := realServer(t, nil)
	host, port, _ := strings.Cut(addr, ":")
	_, env := writeConfigFile(t, `# my MPP account
server   `+host+`
port	`+port+`
user     `+realUser+`
password "`+realPassword+`"
timeout 30s
`, 0o600)
	c := newTestCLI("To: cfg@"+realDomain+"\n\nfrom the config\n", env)
	if st := c.run([]string{"send"}); st != exOK {
		t.Fatalf("status %d, stderr %q", st, c.stderr.String())
	}
	if _, body := delivered(t, root, "cfg@"+realDomain); body != "from the config\n" {
		t.Errorf("body %q", body)
	}
}

// Flags beat the environment, which beats the config file.
func TestSettingsPrecedence(t *testing.T) {
	path, env := writeConfigFile(t, "server cfg.example:1\nuser cfguser\ntls on\ntls_server_name cfg.name\nfrom cfg@example.org\n", 0o644)
	c := newTestCLI("", env)
	s, err := c.resolve(&connFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "cfg.example:1" || s.user != "cfguser" || !s.tls || s.serverName != "cfg.name" || s.from != "cfg@example.org" {
		t.Errorf("from the file: %+v", s)
	}
	env["MPP_SERVER"] = "env.example"
	env["MPP_USER"] = "envuser"
	env["MPP_TLS"] = "off"
	env["MPP_FROM"] = "env@example.org"
	s, err = c.resolve(&connFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "env.example:218" || s.user != "envuser" || s.tls || s.from != "env@example.org" {
		t.Errorf("from the environment: %+v", s)
	}
	s, err = c.resolve(&connFlags{server: "mpps://flag.example:2", user: "flaguser", config: path})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "flag.example:2" || s.user != "flaguser" || !s.tls {
		t.Errorf("from the flags: %+v", s)
	}
	s, err = c.resolve(&connFlags{server: "mpps://flag.example", noTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.tls || s.addr != "flag.example:218" {
		t.Errorf("--no-tls: %+v", s)
	}
	// Without a port: 218, or mppd's TLS port 1218 with TLS.
	s, err = c.resolve(&connFlags{server: "mpps://[::1]"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.tls || s.addr != "[::1]:1218" {
		t.Errorf("mpps without a port: %+v", s)
	}
	s, err = newTestCLI("", nil).resolve(&connFlags{tls: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "127.0.0.1:1218" {
		t.Errorf("default TLS server: %+v", s)
	}
	s, err = newTestCLI("", nil).resolve(&connFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "127.0.0.1:218" {
		t.Errorf("default server: %+v", s)
	}
}

func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"password, group-readable", "user a\npassword x\n", 0o640, "holds a password but its mode is 0640"},
		{"password, world-readable", "password x\n", 0o604, "others may read it; run chmod 600"},
		{"unknown key", "user a\nhost b\n", 0o600, `:2: unknown key "host"`},
		{"no value", "user\n", 0o600, ":1: user has no value"},
		{"twice", "user a\nuser b\n", 0o600, ":2: user set twice"},
		{"two password sources", "password x\npassword_file /p\n", 0o600, "set only one of password, password_command and password_file"},
		{"bad tls", "tls maybe\n", 0o600, `tls: "maybe" is not on or off`},
		{"bad timeout", "timeout soon\n", 0o600, `timeout "soon" is not a duration`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, env := writeConfigFile(t, tc.content, tc.mode)
			env["MPP_SERVER"] = "127.0.0.1:1"
			c := newTestCLI("To: x@example.test\n\nx\n", env)
			if st := c.run([]string{"send", "-u", "alice"}); st != exConfig {
				t.Errorf("status %d, want %d (EX_CONFIG)", st, exConfig)
			}
			if !strings.Contains(c.stderr.String(), tc.want) || strings.Count(c.stderr.String(), "\n") != 1 {
				t.Errorf("stderr %q, want one line with %q", c.stderr.String(), tc.want)
			}
		})
	}
	// A file without a password may be readable by others: the settings
	// in it are no secret.
	_, env := writeConfigFile(t, "user a\n", 0o644)
	if _, err := newTestCLI("", env).resolve(&connFlags{}); err != nil {
		t.Errorf("readable config without a password refused: %v", err)
	}
	// A missing default file is fine; a missing file named on purpose is
	// not.
	env = map[string]string{"HOME": t.TempDir()}
	if _, err := newTestCLI("", env).resolve(&connFlags{}); err != nil {
		t.Errorf("missing default config: %v", err)
	}
	c := newTestCLI("", env)
	if st := c.run([]string{"send", "--config", "/nonexistent/mpp.conf"}); st != exConfig ||
		!strings.Contains(c.stderr.String(), "/nonexistent/mpp.conf") {
		t.Errorf("missing --config: %d %q", st, c.stderr.String())
	}
}

// Each password source, as flag, environment and config; the first found
// wins and the prompt is the last resort.
func TestPasswordSources(t *testing.T) {
	addr, _ := realServer(t, nil)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(realPassword+"\nsecond line ignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openFile := filepath.Join(dir, "pw-open")
	if err := os.WriteFile(openFile, []byte(realPassword+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmdFile := filepath.Join(dir, "pw-cmd")
	if err := os.WriteFile(cmdFile, []byte(realPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The command runs with /bin/sh -c: a pipeline works, and its stdin
	// is not the message (cat would otherwise eat it).
	pwCommand := "cat; cat " + cmdFile + " | head -n 1"
	cfgPath, cfgEnv := writeConfigFile(t, "passwordeval \"cat "+cmdFile+"\"\n", 0o600)
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		status int
		prompt bool
		errIn  string
	}{
		{"--password-file", []string{"--password-file", pwFile}, nil, exOK, false, ""},
		{"--password-command", []string{"--password-command", pwCommand}, nil, exOK, false, ""},
		{"MPP_PASSWORD", nil, map[string]string{"MPP_PASSWORD": realPassword}, exOK, false, ""},
		{"flag beats environment", []string{"--password-file", pwFile}, map[string]string{"MPP_PASSWORD": "wrong"}, exOK, false, ""},
		{"config passwordeval", []string{"--config", cfgPath}, cfgEnv, exOK, false, ""},
		{"prompt", nil, map[string]string{"test-prompt-answer": realPassword}, exOK, true, ""},
		{"password file readable by others", []string{"--password-file", openFile}, nil, exConfig, false, "mode is 0644"},
		{"missing password file", []string{"--password-file", dir + "/none"}, nil, exConfig, false, "no such file"},
		{"command fails", []string{"--password-command", "echo " + realPassword + "; exit 3"}, nil, exConfig, false,
			"password command failed with exit status 3"},
		{"command prints nothing", []string{"--password-command", "true"}, nil, exConfig, false, "printed no password"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			rcpt := "pw" + string(rune('a'+i)) + "@" + realDomain
			c := newTestCLI("To: "+rcpt+"\n\nhi\n", env)
			args := append([]string{"send", "-s", addr, "-u", realUser}, tc.args...)
			if st := c.run(args); st != tc.status {
				t.Fatalf("status %d, want %d; stderr %q", st, tc.status, c.stderr.String())
			}
			if (len(c.prompts) > 0) != tc.prompt {
				t.Errorf("prompts %q", c.prompts)
			}
			if !strings.Contains(c.stderr.String(), tc.errIn) {
				t.Errorf("stderr %q, want %q in it", c.stderr.String(), tc.errIn)
			}
			// The password never reaches the output, even when its
			// command failed after printing it.
			if strings.Contains(c.stderr.String(), realPassword) {
				t.Errorf("password in stderr: %q", c.stderr.String())
			}
		})
	}
}

// mpp send over TLS (mpps) to the real engine: --tls with a CA file and a
// server name, the mpps:// form, and the refusals of a certificate that is
// not trusted or not for the name.
func TestSendOverTLS(t *testing.T) {
	addr, root, caFile := realServerTLS(t)
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		status int
		errIn  string
	}{
		{"--tls --ca-file --server-name", []string{"-s", addr, "--tls", "--ca-file", caFile, "--server-name", "mppd.test"}, nil, exOK, ""},
		{"mpps:// and the IP name", []string{"-s", "mpps://" + addr, "--ca-file", caFile}, nil, exOK, ""},
		{"environment", nil, map[string]string{"MPP_SERVER": addr, "MPP_TLS": "on", "MPP_CA_FILE": caFile, "MPP_SERVER_NAME": "mppd.test"}, exOK, ""},
		{"untrusted certificate", []string{"-s", "mpps://" + addr}, nil, exUnavailable,
			"mpp: connection to " + addr + " failed during TLS handshake: tls: failed to verify certificate"},
		{"wrong server name", []string{"-s", addr, "--tls", "--ca-file", caFile, "--server-name", "other.test"}, nil, exUnavailable,
			"other.test"},
		{"plain client, TLS server", []string{"-s", addr, "--timeout", "1s"}, nil, exUnavailable, "failed during greeting"},
		{"CA file without TLS", []string{"-s", addr, "--ca-file", caFile}, nil, exUsage, "TLS is off"},
		{"bad CA file", []string{"-s", addr, "--tls", "--ca-file", "/dev/null"}, nil, exConfig, "holds no PEM certificate"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"MPP_PASSWORD": realPassword}
			for k, v := range tc.env {
				env[k] = v
			}
			rcpt := "tls" + string(rune('a'+i)) + "@" + realDomain
			c := newTestCLI("To: "+rcpt+"\n\nover TLS\n", env)
			st := c.run(append([]string{"send", "-u", realUser}, tc.args...))
			if st != tc.status {
				t.Fatalf("status %d, want %d; stderr %q", st, tc.status, c.stderr.String())
			}
			if !strings.Contains(c.stderr.String(), tc.errIn) || (tc.errIn != "" && strings.Count(c.stderr.String(), "\n") != 1) {
				t.Errorf("stderr %q, want one line with %q", c.stderr.String(), tc.errIn)
			}
			if st == exOK {
				if _, body := delivered(t, root, rcpt); body != "over TLS\n" {
					t.Errorf("body %q", body)
				}
			}
		})
	}
}
