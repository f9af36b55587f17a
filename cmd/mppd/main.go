// Command mppd is the Message Posting Protocol daemon (RFC 1204).
//
//	mppd [--config FILE]        serve (default FILE: /etc/mppd/mppd.toml)
//	mppd --check-config [--offline]
//	                            load the config, build the backends, try the
//	                            LDAP directory (unless --offline), say "config OK"
//	mppd --version              print the version
//	mppd passwd [flags]         add a user to the password file, or change a password
//
// mppd runs as two processes (see mppd(8) PRIVILEGE SEPARATION): the
// process started is the monitor, which holds the privileges and runs the
// authentication and delivery backends (monitor.go); it starts itself
// again as `mppd engine` (a hidden subcommand), with no privilege at all,
// to accept connections and speak MPP (engine.go). They talk over a
// socketpair (internal/privsep).
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT, or an exit on
// idle) or a successful check; 1 when serving fails at run time (a listen
// address cannot be bound, the engine broke the monitor protocol or died);
// 78 (EX_CONFIG, sysexits.h) for a bad command line, a bad config file, a
// backend that cannot be built from it, an unknown engine_user, a TLS
// certificate that does not load at start, or sockets passed by systemd
// that the config does not name. Status 78 is a mistake a restart cannot
// fix, so the systemd unit lists it in RestartPreventExitStatus=. It is not
// 2: that is how the Go runtime ends a crash or a SIGABRT (the watchdog's
// signal), which a restart should follow.
//
// main only wires: flags, config, logger, backends; the monitor is in
// monitor.go, the engine in engine.go, the accept loop in serve.go, socket
// activation in sockets.go, sd_notify in systemd.go, TLS in tlscert.go,
// and the protocol in package protocol.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/metrics"
	"github.com/mppd/mppd/internal/sendlimit"
	"github.com/mppd/mppd/protocol"
	"golang.org/x/sys/unix"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "devel"

// Exit statuses, documented in mppd(8).
const (
	exitOK      = 0
	exitFailure = 1  // run-time failure: cannot listen
	exitConfig  = 78 // EX_CONFIG: bad usage, config or backend: do not restart
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return passwdMain(args[1:], stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == engineCommand {
		return engineMain(args[1:], stderr)
	}

	fs := flag.NewFlagSet("mppd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", config.DefaultPath, "configuration `file`")
	check := fs.Bool("check-config", false, "load and validate the configuration, build the backends, print \"config OK\" and exit")
	offline := fs.Bool("offline", false, "with --check-config: do not contact the LDAP directory")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mppd [--config FILE] [--check-config [--offline]] [--version]\n"+
			"       mppd passwd [--config FILE] [--file PASSWDFILE] [--address ADDR]... USER\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mppd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitConfig
	}
	if *showVersion {
		fmt.Fprintf(stdout, "mppd %s\n", version)
		return exitOK
	}

	// The text is kept: the engine gets it in the hello and parses it
	// itself, so it never needs to read /etc/mppd.
	configText, err := os.ReadFile(*configPath)
	var cfg *config.Config
	if err == nil {
		cfg, err = config.Parse(*configPath, configText)
	}
	if err != nil {
		startupError(stderr, err)
		return exitConfig
	}
	log := newLogger(cfg, stderr)
	if err := disableCoreDumps(); err != nil {
		log.Warn("cannot set RLIMIT_CORE to 0", logkey.Err, err)
	}

	// Socket activation first, before any goroutine: it unsets LISTEN_*.
	var files []*os.File
	var notActivated string
	if !*check {
		files, notActivated = takeActivation()
	}

	// Their errors name the file and, where they can, the line.
	auth, err := buildAuthenticator(cfg, log.With("component", "authn"))
	if err != nil {
		startupError(stderr, err)
		return exitConfig
	}
	deliv, err := buildDeliverer(cfg, log.With("component", "delivery"))
	if err != nil {
		startupError(stderr, err)
		return exitConfig
	}
	if d := cfg.MailDomainHasNoDot(); d != "" {
		log.Warn("mail_domain has no dot: users post as user@"+d+", an address other hosts cannot reply to; set mail_domain in the config, or the mail name in /etc/mailname",
			"mail_domain", d)
	}
	if *check {
		if err := checkTLSSockets(cfg.TLS.CertFile != "", cfg.Systemd.MPPSSockets); err != nil {
			startupError(stderr, err)
			return exitConfig
		}
		if !*offline {
			what, err := checkDirectory(cfg, log.With("component", "authn"))
			if err != nil {
				startupError(stderr, err)
				return exitConfig
			}
			if what != "" {
				fmt.Fprintf(stdout, "ldap: %s\n", what)
			}
		}
		// The account the engine would run as must exist too.
		if _, err := engineIdentity(cfg); err != nil {
			startupError(stderr, err)
			return exitConfig
		}
		fmt.Fprintln(stdout, "config OK")
		return exitOK
	}

	log.Info("starting", "version", version, "config", cfg)
	log.Info("backends", "authn", fmt.Sprint(auth), "delivery", fmt.Sprint(deliv))
	return runMonitor(monitorSetup{
		cfg:          cfg,
		configText:   configText,
		auth:         auth,
		deliv:        deliv,
		files:        files,
		notActivated: notActivated,
		stderr:       stderr,
		log:          log,
	})
}

// newServer is the protocol engine with its backends, the sending limits
// and, if on, metrics.
func newServer(cfg *config.Config, auth authn.Authenticator, deliv delivery.Deliverer, log *slog.Logger, m *metrics.Metrics) *protocol.Server {
	srv := &protocol.Server{
		Config:   protocolConfig(cfg),
		Auth:     auth,
		Delivery: deliv,
		Log:      log,
	}
	if lim := sendlimit.New(sendLimitConfig(cfg), log); lim.Enabled() {
		srv.SendLimit = lim
		log.Info("sending limits", "config", lim.String())
	} else {
		log.Info("sending limits", "config", "none")
	}
	if m != nil {
		srv.Events = m.Observe
	}
	return srv
}

// sessionFunc is what the daemon runs for each connection: the TLS
// handshake first on an mpps connection, then the engine's session.
func sessionFunc(srv *protocol.Server, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) func(context.Context, net.Conn) {
	idle := cfg.Session.IdleTimeout.D()
	return func(ctx context.Context, conn net.Conn) {
		m.SessionStarted()
		defer m.SessionEnded()
		inner := conn
		if sc, ok := conn.(*sessionConn); ok {
			inner = sc.NetConn()
		}
		if tc, ok := inner.(*tls.Conn); ok && !handshake(ctx, tc, idle, log, m) {
			return
		}
		srv.Serve(ctx, conn)
	}
}

// serveMetrics serves /metrics on l until the returned server is closed;
// done is closed when it has stopped.
func serveMetrics(l net.Listener, m *metrics.Metrics, log *slog.Logger) (*http.Server, chan struct{}) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	attrs := []any{"addr", l.Addr().String(), "role", roleMetrics}
	if ta, ok := l.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("metrics endpoint is not on a loopback address: anyone who can reach it sees the counts", attrs...)
	}
	// Not msg=listening: that names the MPP listeners (the e2e harness
	// and scripts take the first one for the MPP address).
	log.Info("metrics endpoint listening", attrs...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", logkey.Err, err)
		}
	}()
	return hs, done
}

// newLogger returns the daemon's logger: log/slog to stderr, text or JSON,
// one line per event. When stderr is the journal (JOURNAL_STREAM), the
// time is left out (journald stamps each line itself) and each line
// starts with its syslog priority (journalHandler).
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel()}
	newHandler := func(w io.Writer) slog.Handler {
		if cfg.Log.Format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	if w == io.Writer(os.Stderr) && underJournal() {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		return slog.New(newJournalHandler(newHandler, w))
	}
	return slog.New(newHandler(w))
}

// startupError reports an error that stops mppd before it serves, as one
// line on stderr. When stderr is the journal the line carries the err
// priority ("<3>", sd-daemon(3)); without it journald files the line as
// info, and `journalctl -p warning -u mppd` would not show why mppd does
// not start.
func startupError(w io.Writer, err error) {
	io.WriteString(w, startupErrorLine(err, w == io.Writer(os.Stderr) && underJournal()))
}

func startupErrorLine(err error, journal bool) string {
	prefix := ""
	if journal {
		prefix = syslogPrefix(slog.LevelError)
	}
	return fmt.Sprintf("%smppd: %v\n", prefix, err)
}

// disableCoreDumps sets this process's core-file limit to 0, soft and
// hard, so that neither mppd, which holds passwords in memory, nor any
// child (a sendmail holding a message inherits the limit) can dump core,
// and no child can raise it again.
func disableCoreDumps() error {
	return unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
}
