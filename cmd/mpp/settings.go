package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/mppclient"
)

// Environment variables mpp reads. Each overrides the config file and is
// overridden by the matching flag.
const (
	envServer     = "MPP_SERVER"
	envUser       = "MPP_USER"
	envPassword   = "MPP_PASSWORD"
	envTLS        = "MPP_TLS"
	envCAFile     = "MPP_CA_FILE"
	envServerName = "MPP_SERVER_NAME"
	envFrom       = "MPP_FROM"
	envConfig     = "MPP_CONFIG"
	envQueue      = "MPP_QUEUE"
	envQueueDir   = "MPP_QUEUE_DIR"
	// The default server is this machine, on MPP's port (RFC 1204 §3.2)
	// or, with TLS, on mppd's TLS port.
	defaultServer = "127.0.0.1"
	// passwordCommandTimeout bounds a --password-command: long enough
	// for a passphrase typed into a pinentry, short enough that a hung
	// command does not hang a cron job's mail for ever.
	passwordCommandTimeout = 2 * time.Minute
)

var errNoTerminal = errors.New("no terminal to ask for the password on")

// settings is everything needed to open a session, gathered from flags,
// environment and the config file.
type settings struct {
	addr       string // host:port
	tls        bool
	caFile     string
	serverName string
	user       string
	from       string // the user's own address, when known (config "from")
	timeout    time.Duration

	// The local queue (sendmail mode): on unless switched off, in
	// queueDir ("" when no directory could be chosen).
	queue    bool
	queueDir string

	// Password sources, at most one used: the first set of password,
	// passwordCommand, passwordFile, else the terminal prompt.
	password        string
	havePassword    bool
	passwordCommand string
	passwordFile    string
}

// connFlags are the flags every command that talks to a server shares.
type connFlags struct {
	server, user, caFile, serverName, config string
	passwordFile, passwordCommand            string
	tls, noTLS, verbose                      bool
	timeout                                  time.Duration
}

func (f *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "s", "", "server `host[:port]`, or mpp://host[:port] or mpps://host[:port]; port "+mppclient.DefaultPort+", with TLS "+mppclient.DefaultTLSPort+", when none is given (default $"+envServer+", config \"server\", else "+defaultServer+")")
	fs.StringVar(&f.user, "u", "", "user `name` (default $"+envUser+", config \"user\", else $USER)")
	fs.BoolVar(&f.tls, "tls", false, "TLS from the first byte (mpps) (default $"+envTLS+", config \"tls\")")
	fs.BoolVar(&f.noTLS, "no-tls", false, "plain TCP even if the config or environment asks for TLS")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of CA certificates to trust for TLS (default $"+envCAFile+", config \"tls_ca_file\", else the system's)")
	fs.StringVar(&f.serverName, "server-name", "", "`name` the server's certificate must carry (default $"+envServerName+", config \"tls_server_name\", else the server's host)")
	fs.StringVar(&f.config, "config", "", "config `file` (default $"+envConfig+", else $XDG_CONFIG_HOME/mpp/config or ~/.config/mpp/config; on Windows %APPDATA%\\mpp\\config)")
	fs.StringVar(&f.passwordFile, "password-file", "", "read the password from the first line of `file`")
	fs.StringVar(&f.passwordCommand, "password-command", "", "run `command` with /bin/sh -c and take the first line it prints as the password")
	fs.DurationVar(&f.timeout, "timeout", 0, "bound on each read and write (default "+mppclient.DefaultTimeout.String()+")")
	fs.BoolVar(&f.verbose, "v", false, "print the dialogue with the server on stderr (password masked)")
}

// configError is a problem with the config file or a password source the
// user set up: EX_CONFIG.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// resolve merges flags, environment and config file, in that order of
// precedence.
func (c *cli) resolve(f *connFlags) (*settings, error) {
	path, explicit := f.config, f.config != ""
	if path == "" {
		if path = c.getenv(envConfig); path != "" {
			explicit = true
		}
	}
	if path == "" {
		path = defaultConfigPath(c.platform())
	}
	var file map[string]string
	if path != "" {
		var err error
		file, err = readConfig(path, explicit)
		if err != nil {
			return nil, err
		}
	}

	s := &settings{timeout: f.timeout}
	server := firstOf(f.server, c.getenv(envServer), file["server"], defaultServer)
	tlsSetting := firstOf(c.getenv(envTLS), file["tls"])
	if tlsSetting != "" {
		on, err := parseBool(tlsSetting)
		if err != nil {
			return nil, configErrorf("tls: %v", err)
		}
		s.tls = on
	}
	if scheme, rest, ok := strings.Cut(server, "://"); ok {
		switch strings.ToLower(scheme) {
		case "mpp":
			s.tls = false
		case "mpps":
			s.tls = true
		default:
			return nil, &usageError{fmt.Sprintf("server %q: unknown scheme %q (mpp:// or mpps://)", server, scheme)}
		}
		server = rest
	}
	if f.tls {
		s.tls = true
	}
	if f.noTLS {
		s.tls = false
	}
	if port := file["port"]; port != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(server, "["), "]"), port)
		}
	}
	if s.tls {
		s.addr = mppclient.WithPort(server, mppclient.DefaultTLSPort)
	} else {
		s.addr = mppclient.WithDefaultPort(server)
	}
	s.caFile = firstOf(f.caFile, c.getenv(envCAFile), file["tls_ca_file"])
	s.serverName = firstOf(f.serverName, c.getenv(envServerName), file["tls_server_name"])
	s.user = firstOf(f.user, c.getenv(envUser), file["user"], c.getenv("USER"))
	s.from = firstOf(c.getenv(envFrom), file["from"])
	if s.timeout == 0 && file["timeout"] != "" {
		d, err := time.ParseDuration(file["timeout"])
		if err != nil || d <= 0 {
			return nil, configErrorf("%s: timeout %q is not a duration such as 30s", path, file["timeout"])
		}
		s.timeout = d
	}

	s.queue = true
	if v := firstOf(c.getenv(envQueue), file["queue"]); v != "" {
		on, err := parseBool(v)
		if err != nil {
			return nil, configErrorf("queue: %v", err)
		}
		s.queue = on
	}
	s.queueDir = firstOf(c.getenv(envQueueDir), file["queue_dir"], defaultQueueDir(c.platform()))

	switch {
	case f.passwordFile != "":
		s.passwordFile = f.passwordFile
	case f.passwordCommand != "":
		s.passwordCommand = f.passwordCommand
	case c.getenv(envPassword) != "":
		s.password, s.havePassword = c.getenv(envPassword), true
	default:
		n := 0
		for _, k := range []string{"password", "password_command", "password_file"} {
			if _, ok := file[k]; ok {
				n++
			}
		}
		if n > 1 {
			return nil, configErrorf("%s: set only one of password, password_command and password_file", path)
		}
		if pw, ok := file["password"]; ok {
			s.password, s.havePassword = pw, true
		}
		s.passwordCommand = file["password_command"]
		s.passwordFile = file["password_file"]
	}
	return s, nil
}

// usageError is a bad command line or setting: EX_USAGE.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "on", "yes", "true":
		return true, nil
	case "0", "off", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", s)
}

// configKeys are the keys of the config file. "passwordeval" is msmtp's
// name for password_command, accepted so a msmtp user can copy the line.
var configKeys = map[string]string{
	"server": "server", "port": "port", "user": "user", "from": "from",
	"tls": "tls", "tls_ca_file": "tls_ca_file", "tls_server_name": "tls_server_name",
	"password": "password", "password_command": "password_command",
	"passwordeval": "password_command", "password_file": "password_file",
	"timeout": "timeout", "queue": "queue", "queue_dir": "queue_dir",
}

// readConfig reads a config file: one "key value" per line, as msmtp's;
// empty lines and lines starting with # are ignored; a value may be put in
// double quotes (kept as written inside, no escapes). A missing file is
// fine unless it was named explicitly. A file that holds a password and
// that others than its owner may read is refused, as a password in it is
// then no secret.
func readConfig(path string, explicit bool) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return nil, nil
		}
		return nil, configErrorf("config file: %v", err)
	}
	file := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			k, v = line[:i], strings.TrimSpace(line[i+1:])
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		key, ok := configKeys[k]
		if !ok {
			return nil, configErrorf("%s:%d: unknown key %q", path, n, k)
		}
		if v == "" {
			return nil, configErrorf("%s:%d: %s has no value", path, n, k)
		}
		if _, dup := file[key]; dup {
			return nil, configErrorf("%s:%d: %s set twice", path, n, k)
		}
		file[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, configErrorf("%s: %v", path, err)
	}
	if _, ok := file["password"]; ok {
		if err := checkPrivate(path); err != nil {
			return nil, err
		}
	}
	return file, nil
}

// checkPrivate refuses a file holding a secret that its group or others
// may read or write.
func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return configErrorf("%v", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return configErrorf("%s holds a password but its mode is %04o: others may read it; run chmod 600 %s",
			path, st.Mode().Perm(), path)
	}
	return nil
}

// getPassword returns the password from the source settings name, or asks
// on the terminal.
func (c *cli) getPassword(s *settings) (string, error) {
	switch {
	case s.havePassword:
		return s.password, nil
	case s.passwordFile != "":
		if err := checkPrivate(s.passwordFile); err != nil {
			return "", err
		}
		data, err := os.ReadFile(s.passwordFile)
		if err != nil {
			return "", configErrorf("password file: %v", err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return strings.TrimSuffix(line, "\r"), nil
	case s.passwordCommand != "":
		return runPasswordCommand(s.passwordCommand)
	}
	pw, err := c.readPassword(fmt.Sprintf("Password for %s at %s: ", s.user, s.addr))
	if errors.Is(err, errNoTerminal) {
		return "", &usageError{fmt.Sprintf("no password: set %s, --password-file, --password-command or the config file, or run mpp on a terminal", envPassword)}
	}
	if err != nil {
		return "", &ioError{fmt.Errorf("reading the password: %w", err)}
	}
	return pw, nil
}

// runPasswordCommand runs command as msmtp's passwordeval does: with
// /bin/sh -c (cmd.exe /C on Windows), because it is the user's own line from their own config or
// command line (a pipeline such as "gpg -d ~/.mpp.gpg" or "pass show
// mail"), not text from anyone else. Its standard input is /dev/null, so
// it cannot eat the message on mpp's standard input; its standard error
// goes to the user (a pinentry may talk there). The first line of its
// output is the password; the output is never shown or logged, not even
// when the command fails.
func runPasswordCommand(command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), passwordCommandTimeout)
	defer cancel()
	cmd := shellCommand(ctx, command)
	cmd.Stderr = os.Stderr
	var out bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: 64 * 1024}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", configErrorf("password command did not finish within %v", passwordCommandTimeout)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", configErrorf("password command failed with exit status %d", ee.ExitCode())
		}
		return "", configErrorf("password command: %v", err)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", configErrorf("password command printed no password")
	}
	return line, nil
}

// limitedWriter keeps the first n bytes and discards the rest (a command
// that prints a whole file must not fill memory).
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// sessionOptions checks that s names a user to log in as (howToSet says
// how to name one) and returns the client options, with the dialogue
// traced on standard error when verbose.
func (c *cli) sessionOptions(s *settings, verbose bool, howToSet string) (mppclient.Options, error) {
	if s.user == "" {
		return mppclient.Options{}, &usageError{"no user name: " + howToSet}
	}
	var trace io.Writer
	if verbose {
		trace = c.stderr
	}
	return s.clientOptions(trace)
}

// clientOptions builds the mppclient options for s.
func (s *settings) clientOptions(trace io.Writer) (mppclient.Options, error) {
	opt := mppclient.Options{Timeout: s.timeout, Trace: trace}
	if !s.tls {
		if s.caFile != "" || s.serverName != "" {
			// A CA file without TLS is a setting that does nothing;
			// better say so than send the password in clear unaware.
			return opt, &usageError{"a CA file or server name is set but TLS is off: use --tls or mpps://"}
		}
		return opt, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.serverName}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return opt, configErrorf("CA file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return opt, configErrorf("CA file %s holds no PEM certificate", s.caFile)
		}
		cfg.RootCAs = pool
	}
	opt.TLS = cfg
	return opt, nil
}

// dial opens a session and logs in.
func dialLogin(ctx context.Context, s *settings, password string, opt mppclient.Options) (*mppclient.Client, error) {
	cl, err := mppclient.Dial(ctx, s.addr, opt)
	if err != nil {
		return nil, err
	}
	if err := cl.Login(s.user, password); err != nil {
		cl.Quit()
		return nil, err
	}
	return cl, nil
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// exitStatusOf maps any error of resolve, getPassword, the input or a
// session to a sysexits.h status.
func exitStatusOf(err error) int {
	switch {
	case errors.As(err, new(*usageError)):
		return exUsage
	case errors.As(err, new(*configError)):
		return exConfig
	case errors.As(err, new(*ioError)):
		return exIOErr
	}
	return exitStatus(err)
}

// ioError is a local read that failed (the password from the terminal):
// EX_IOERR.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }
