package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// validator collects the problems of one config file, each with its line.
type validator struct {
	path  string
	lines map[string]int
	errs  []string
}

// fail records a problem with key. The line is the key's own line when the
// file sets it, else the line of its table header, else none (the value is
// a default).
func (v *validator) fail(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n := v.line(key); n > 0 {
		v.errs = append(v.errs, fmt.Sprintf("%s:%d: %s: %s", v.path, n, key, msg))
		return
	}
	v.errs = append(v.errs, fmt.Sprintf("%s: %s: %s", v.path, key, msg))
}

// prefixes parses key's list of networks in CIDR form, masked; each entry
// that is not one is reported with examples of the form.
func (v *validator) prefixes(key string, list []string, examples string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range list {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			v.fail(key, "%q is not a network in CIDR form (like %s)", n, examples)
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

func (v *validator) line(key string) int {
	for k := key; k != ""; {
		if n, ok := v.lines[k]; ok {
			return n
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(v.errs, "\n"))
}

func (v *validator) intRange(key string, val, lo, hi int64, why string) {
	if val < lo || val > hi {
		if why != "" {
			why = " (" + why + ")"
		}
		v.fail(key, "%d is out of range %d..%d%s", val, lo, hi, why)
	}
}

func (v *validator) durRange(key string, d Duration, lo, hi time.Duration) {
	if d.D() < lo || d.D() > hi {
		v.fail(key, "%s is out of range %s..%s", d, lo, hi)
	}
}

func (v *validator) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.fail(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

// validate checks every value, resolves relative paths, and fills in the
// derived fields. lines comes from keyLines; nil for a config that has no
// file.
func (c *Config) validate(lines map[string]int) error {
	v := &validator{path: c.Path, lines: lines}
	if c.Path == "" {
		v.path = "(defaults)"
	}

	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			v.fail("hostname", "not set and os.Hostname failed: %v", err)
		}
		c.Hostname = h
	}
	if c.Hostname != "" && !validHostname(c.Hostname) {
		v.fail("hostname", "%q is not a host name (letters, digits, '-', '.', at most 253 octets)", c.Hostname)
	}

	if len(c.Listen)+len(c.ListenTLS) == 0 {
		v.fail("listen", "no address to listen on")
	}
	seen := map[string]bool{}
	checkListenList(v, "listen", c.Listen, seen, "is listed twice")
	c.validateSockets(v, seen)
	v.durRange("drain_timeout", c.DrainTimeout, 0, time.Hour)
	v.intRange("max_sessions", int64(c.MaxSessions), 1, 1_000_000, "")
	v.intRange("max_sessions_per_client", int64(c.MaxSessionsPerClient), 1, 1_000_000, "")
	v.intRange("max_sessions_per_network", int64(c.MaxSessionsPerNetwork), 0, 1_000_000, "0 means 4 × max_sessions_per_client")
	if c.EngineUser == "" || c.EngineUser == "root" || strings.ContainsAny(c.EngineUser, " \t\r\n:/") {
		v.fail("engine_user", "%q is not an account name mppd's engine may run as", c.EngineUser)
	}
	c.trusted = v.prefixes("trusted_networks", c.TrustedNetworks, `"192.0.2.0/24" or "2001:db8::/32"`)
	c.proxyFrom = v.prefixes("proxy_protocol_from", c.ProxyProtocolFrom, `"192.0.2.10/32" or "2001:db8::/64"`)

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	if err := c.level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		c.level = slog.LevelInfo
	}
	v.oneOf("log.format", c.Log.Format, "text", "json")

	s := &c.Session
	// The longest legal PASS line ("PASS " + 512 octets + CRLF) must fit.
	v.intRange("session.max_line", int64(s.MaxLine), 520, 65536, "a 512-octet PASS line must fit")
	v.durRange("session.idle_timeout", s.IdleTimeout, time.Second, 24*time.Hour)
	v.durRange("session.session_timeout", s.SessionTimeout, time.Second, 7*24*time.Hour)
	if s.SessionTimeout < s.IdleTimeout {
		v.fail("session.session_timeout", "%s is shorter than session.idle_timeout (%s)", s.SessionTimeout, s.IdleTimeout)
	}
	v.intRange("session.min_data_rate", int64(s.MinDataRate), 0, 1<<30, "0 turns it off")
	v.intRange("session.max_errors", int64(s.MaxErrors), 1, 1000, "")
	v.intRange("session.max_junk_commands", int64(s.MaxJunkCommands), 1, 100000, "")
	c.userPattern = nil
	if !strings.HasPrefix(s.UserPattern, "^") || !strings.HasSuffix(s.UserPattern, "$") {
		// Unanchored, a pattern matches any name that merely contains
		// something acceptable ("-oProxyCommand=x" contains "x").
		v.fail("session.user_pattern", "%q must be anchored: start with ^ and end with $", s.UserPattern)
	} else if re, err := regexp.Compile(s.UserPattern); err != nil {
		v.fail("session.user_pattern", "%v", err)
	} else {
		c.userPattern = re
	}
	v.durRange("session.auth_failure_delay", s.AuthFailureDelay, 0, time.Minute)

	m := &c.Message
	v.intRange("message.max_size", m.MaxSize, 1024, 1<<32, "")
	v.intRange("message.max_header_size", int64(m.MaxHeaderSize), 1024, 1<<24, "")
	if int64(m.MaxHeaderSize) > m.MaxSize {
		v.fail("message.max_header_size", "%d is larger than message.max_size (%d)", m.MaxHeaderSize, m.MaxSize)
	}
	v.intRange("message.max_recipients", int64(m.MaxRecipients), 1, 1000, "")
	v.intRange("message.max_received", int64(m.MaxReceived), 1, 1000, "")
	if m.StagingDir != "" {
		m.StagingDir = c.resolve(m.StagingDir)
		if fi, err := os.Stat(m.StagingDir); err != nil {
			v.fail("message.staging_dir", "%v", err)
		} else if !fi.IsDir() {
			v.fail("message.staging_dir", "%s is not a directory", m.StagingDir)
		}
	}
	v.intRange("message.memory_threshold", int64(m.MemoryThreshold), 0, 1<<30, "")

	c.validateAbuse(v)
	c.validateLimits(v)
	c.resolvePaths()
	if sec, err := c.authnSection(); err != nil {
		v.fail("authn.backend", "%v", err)
	} else if err := sec.Validate(); err != nil {
		v.backendFail("authn."+c.Authn.Backend, err)
	}
	if sec, err := c.deliverySection(); err != nil {
		v.fail("delivery.backend", "%v", err)
	} else if err := sec.Validate(); err != nil {
		v.backendFail("delivery."+c.Delivery.Backend, err)
	}
	return v.err()
}

// resolve makes a relative path relative to the config file's directory.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

// resolvePaths resolves the backends' relative paths against the config
// file's directory, and fills in the settings that default to something
// outside their section. A backend with such a setting adds a line here.
func (c *Config) resolvePaths() {
	c.Authn.Passwdfile.Path = c.resolve(c.Authn.Passwdfile.Path)
	l := &c.Authn.LDAP
	l.CAFile, l.ClientCert, l.ClientKey = c.resolve(l.CAFile), c.resolve(l.ClientCert), c.resolve(l.ClientKey)
	l.ServicePasswordFile = c.resolve(l.ServicePasswordFile)
	if c.Authn.Passwdfile.MailDomain == "" || c.Authn.PAM.MailDomain == "" {
		d := defaultMailDomain(c.Hostname)
		if c.Authn.Passwdfile.MailDomain == "" {
			c.Authn.Passwdfile.MailDomain = d
		}
		if c.Authn.PAM.MailDomain == "" {
			c.Authn.PAM.MailDomain = d
		}
	}
	c.Delivery.Maildir.Root = c.resolve(c.Delivery.Maildir.Root)
}

// checkListen accepts "host:port" where host is empty (every address) or
// an IP address, and port is a number. Host names are refused: what a
// name resolves to can change under a running daemon.
func checkListen(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number 0..65535", port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host %q is not an IP address (leave it empty for all addresses)", host)
		}
	}
	return nil
}

// anyPort reports whether a listen address asks for port 0, a port the
// kernel picks at bind time: two of them never clash, so they are left out
// of the duplicate checks.
func anyPort(a string) bool {
	_, port, err := net.SplitHostPort(a)
	return err == nil && port == "0"
}

// validHostname checks the LDH syntax (RFC 1123 §2.1) loosely: the name
// goes into the greeting, Received: and Message-ID:, so it must not carry
// spaces, control bytes or anything a header parser would choke on.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return false
			}
		}
	}
	return true
}

// backendKey is a key name as a backend's Validate puts it before its
// message ("timeout: ..."); backendNext is one that follows another
// message on the same line ("...; timeout: ...", as authn/pam joins them).
var (
	backendKey  = regexp.MustCompile(`^([a-z][a-z0-9_]*): `)
	backendNext = regexp.MustCompile(`; [a-z][a-z0-9_]*: `)
)

// splitBackendErr splits a backend's error into its messages: one per
// line, and a line joined with "; " before a key name is split there too.
func splitBackendErr(err error) []string {
	var msgs []string
	for _, line := range strings.Split(err.Error(), "\n") {
		for {
			loc := backendNext.FindStringIndex(line)
			if loc == nil {
				break
			}
			msgs = append(msgs, line[:loc[0]])
			line = line[loc[0]+2:]
		}
		msgs = append(msgs, line)
	}
	return msgs
}

// backendFail records the problems a backend's Validate reported for
// section ("delivery.sendmail"), one per line of err, each at the line of
// the key it names when the file sets that key (else at the section's).
// Backends write "name: key: message", "section.key: message" or
// "key: message"; the section is named here, so their own prefix goes.
func (v *validator) backendFail(section string, err error) {
	name := section[strings.LastIndexByte(section, '.')+1:]
	for _, msg := range splitBackendErr(err) {
		msg = strings.TrimPrefix(msg, name+": ")
		msg = strings.TrimPrefix(msg, section+": ")
		msg = strings.TrimPrefix(msg, section+".")
		if m := backendKey.FindStringSubmatch(msg); m != nil {
			v.fail(section+"."+m[1], "%s", msg[len(m[0]):])
			continue
		}
		v.fail(section, "%s", msg)
	}
}
