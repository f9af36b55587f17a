// Command mppd is the Message Posting Protocol daemon (RFC 1204).
//
//	mppd [--config FILE]        serve (default FILE: /etc/mppd/mppd.toml)
//	mppd --inetd[=mpp|mpps]     serve one connection on stdin (Accept=yes)
//	mppd --check-config [--offline]
//	                            load the config, build the backends, try the
//	                            LDAP directory (unless --offline), say "config OK"
//	mppd --version              print the version
//	mppd passwd [flags]         add a user to the password file, or change a password
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT, or an exit on
// idle) or a successful check; 1 when serving fails at run time (a listen
// address cannot be bound); 78 (EX_CONFIG, sysexits.h) for a bad command
// line, a bad config file, a backend that cannot be built from it, a TLS
// certificate that does not load at start, or sockets passed by systemd
// that the config does not name. Status 78 is a mistake a restart cannot
// fix, so the systemd unit lists it in RestartPreventExitStatus=. It is not
// 2: that is how the Go runtime ends a crash or a SIGABRT (the watchdog's
// signal), which a restart should follow.
//
// main only wires: flags, config, logger, backends, listeners; the accept
// loop is in serve.go, socket activation in sockets.go, sd_notify in
// systemd.go, TLS in tlscert.go, and the protocol in package protocol.
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
	"os/signal"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/metrics"
	"github.com/mppd/mppd/internal/sendlimit"
	"github.com/mppd/mppd/internal/throttle"
	"github.com/mppd/mppd/protocol"
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

	fs := flag.NewFlagSet("mppd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", config.DefaultPath, "configuration `file`")
	check := fs.Bool("check-config", false, "load and validate the configuration, build the backends, print \"config OK\" and exit")
	offline := fs.Bool("offline", false, "with --check-config: do not contact the LDAP directory")
	showVersion := fs.Bool("version", false, "print the version and exit")
	var inetd inetdFlag
	fs.Var(&inetd, "inetd", "serve one connection on standard input (or the one socket systemd passes) and exit; `=mpps` for MPP inside TLS")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mppd [--config FILE] [--check-config [--offline]] [--version] [--inetd[=mpp|mpps]]\n"+
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

	cfg, err := config.Load(*configPath)
	if err != nil {
		startupError(stderr, err)
		return exitConfig
	}
	log := newLogger(cfg, stderr)
	if err := disableCoreDumps(); err != nil {
		log.Warn("cannot set RLIMIT_CORE to 0", "err", err)
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
		fmt.Fprintln(stdout, "config OK")
		return exitOK
	}

	log.Info("starting", "version", version, "config", cfg)
	log.Info("backends", "authn", fmt.Sprint(auth), "delivery", fmt.Sprint(deliv))

	// SIGHUP before anything else: its default action ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var certs *certStore
	if cfg.TLS.CertFile != "" {
		certs = &certStore{certFile: cfg.TLS.CertFile, keyFile: cfg.TLS.KeyFile, log: log}
		if err := certs.load(false); err != nil {
			log.Error("cannot load the TLS certificate", "err", err)
			return exitConfig
		}
	}
	tlsConfig := func() *tls.Config { return certs.config(cfg.TLSMinVersion()) }

	if inetd.role != "" {
		return serveInetd(ctx, inetd.role, files, cfg, auth, deliv, certs, tlsConfig, log)
	}

	var set *socketSet
	if files != nil {
		set, err = fromActivation(files, cfg.Systemd)
		if err != nil {
			log.Error("cannot use the sockets systemd passed", "err", err)
			return exitConfig
		}
		log.Info("socket-activated", "sockets", len(files))
		if set.metrics == nil && cfg.Metrics.Listen != "" {
			if set.metrics, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
				log.Error("cannot listen", "err", err)
				set.close()
				return exitFailure
			}
		}
	} else {
		log.Info("binding the configured addresses", "why", notActivated)
		if set, err = fromConfig(cfg); err != nil {
			log.Error("cannot listen", "err", err)
			return exitFailure
		}
	}
	if set.hasTLS() && certs == nil {
		// Only systemd can pass an mpps socket without [tls] (listen_tls
		// requires it). Serve the other sockets: a TLS mistake must not
		// take plain MPP down with it.
		for _, l := range set.dropTLS() {
			log.Error("not serving an mpps socket: it needs tls.cert_file and tls.key_file; set them, or disable the socket unit (systemctl disable --now mppd-tls.socket), then restart mppd",
				"addr", l.Addr().String())
		}
		if len(set.mpp) == 0 {
			log.Error("no socket left to serve")
			set.close()
			return exitConfig
		}
	}

	var m *metrics.Metrics
	var metricsDone chan struct{}
	var metricsServer *http.Server
	if set.metrics != nil {
		m = metrics.New(cfg.Authn.Backend)
		if certs != nil {
			certs.metrics = m
			if c := certs.cur.Load(); c != nil {
				m.CertificateLoaded(c.Leaf.NotAfter, false, true)
			}
		}
		metricsServer, metricsDone = serveMetrics(set.metrics, m, log)
	}

	srv := newServer(cfg, auth, deliv, log, m)
	// The sending limits sweep until every session has ended, then sum
	// up the refusal windows still open.
	limitsStop, limitsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(limitsDone)
		if srv.SendLimit != nil {
			srv.SendLimit.Run(limitsStop)
		}
	}()
	th := throttle.New(throttleConfig(cfg), log)
	srv.Throttle = th
	log.Info("throttle", "config", th.String())
	d := &daemon{
		serve:         sessionFunc(srv, cfg, log, m),
		refuse:        protocol.Refuse,
		log:           log,
		maxSessions:   cfg.MaxSessions,
		maxPerClient:  cfg.MaxSessionsPerClient,
		maxPerNetwork: cfg.SessionsPerNetwork(),
		ipv4Prefix:    cfg.Throttle.IPv4Prefix,
		ipv6Prefix:    cfg.Throttle.IPv6Prefix,
		trusted:       cfg.Trusted,
		admit:         th.Admit,
		drainTimeout:  cfg.DrainTimeout.D(),
		metrics:       m,
	}
	if set.hasTLS() {
		d.tlsConfig = tlsConfig
	}
	if cfg.ProxyProtocol() {
		d.proxyFrom = cfg.ProxyFrom
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		d.notify = sdNotify
	}
	if wd, err := sd.SdWatchdogEnabled(false); err == nil && wd > 0 {
		d.watchdog = wd
		log.Info("systemd watchdog", "interval", wd)
	}
	if e := cfg.Systemd.ExitOnIdle.D(); e > 0 {
		if files != nil {
			d.exitOnIdle = e
		} else {
			log.Info("systemd.exit_on_idle applies only when socket-activated; staying up")
		}
	}

	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				d.sendNotify(reloadingState())
				reload(certs, log)
				d.sendNotify("READY=1")
			}
		}
	}()

	err = d.run(ctx, stop, set.mpp)
	stop()
	<-reloaded
	close(limitsStop)
	<-limitsDone
	if metricsServer != nil {
		metricsServer.Close()
		<-metricsDone
	}
	if err != nil {
		log.Error("stopped", "err", err)
		return exitFailure
	}
	log.Info("stopped")
	return exitOK
}

// reload is what SIGHUP does: read the TLS certificate and key again. The
// rest of the configuration is not reloaded: limits, backends and
// addresses are fixed for the life of the process (restart mppd; under
// socket activation no connection is lost). Running sessions are not
// touched.
func reload(certs *certStore, log *slog.Logger) {
	if certs == nil {
		log.Info("SIGHUP: no TLS certificate to reload", logkey.Event, logkey.EventReload)
		return
	}
	_ = certs.load(true) // a failure is logged and keeps the old pair
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
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	return hs, done
}

// serveInetd serves the one connection of an Accept=yes unit: on standard
// input (StandardInput=socket, or systemd-socket-activate --inetd), or the
// single socket systemd passes as fd 3. role says whether it is plain MPP
// or MPP inside TLS. SIGTERM works as for the daemon: an idle session gets
// 451, a message under way is finished.
func serveInetd(ctx context.Context, role string, files []*os.File, cfg *config.Config,
	auth authn.Authenticator, deliv delivery.Deliverer, certs *certStore, tlsConfig func() *tls.Config, log *slog.Logger) int {
	var f *os.File
	switch len(files) {
	case 0:
		f = os.Stdin
	case 1:
		f = files[0]
	default:
		log.Error("--inetd serves one connection, but systemd passed several sockets", "sockets", len(files))
		return exitConfig
	}
	if err := checkConnection(f); err != nil {
		log.Error("--inetd: cannot serve this descriptor", "fd", f.Fd(), "err", err)
		return exitConfig
	}
	conn, err := net.FileConn(f)
	if err != nil {
		log.Error("--inetd: not a connected socket", "fd", f.Fd(), "err", err)
		return exitConfig
	}
	if f == os.Stdin {
		// The session closes conn, a duplicate; stdin and stdout would
		// keep the connection open after it. Point them at /dev/null
		// so the client sees the close at once.
		if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
			_ = unix.Dup2(int(null.Fd()), 0)
			_ = unix.Dup2(int(null.Fd()), 1)
			null.Close()
		}
	} else {
		f.Close()
	}
	if role == roleMPPS {
		if certs == nil {
			log.Error("--inetd=mpps needs tls.cert_file and tls.key_file")
			conn.Close()
			return exitConfig
		}
		conn = tls.Server(conn, tlsConfig())
	}
	srv := newServer(cfg, auth, deliv, log, nil)
	sessionFunc(srv, cfg, log, nil)(ctx, conn)
	return exitOK
}

// inetdFlag is --inetd (plain MPP) or --inetd=mpps (MPP inside TLS).
type inetdFlag struct{ role string }

func (f *inetdFlag) String() string   { return f.role }
func (f *inetdFlag) IsBoolFlag() bool { return true }
func (f *inetdFlag) Set(s string) error {
	switch s {
	case "true", roleMPP:
		f.role = roleMPP
	case roleMPPS:
		f.role = roleMPPS
	case "false":
		f.role = ""
	default:
		return fmt.Errorf("%q is not mpp or mpps", s)
	}
	return nil
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
