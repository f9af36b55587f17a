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
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/metrics"
	"github.com/mppd/mppd/internal/privdrop"
	"github.com/mppd/mppd/internal/privsep"
	"github.com/mppd/mppd/internal/throttle"
	"github.com/mppd/mppd/protocol"
)

// Descriptors the monitor passes to the engine.
const (
	engineMonitorFD   = 3 // the socketpair
	engineListenersFD = 4 // the listeners, in the order of the hello
)

// engineProcs is how many goroutines of the engine run Go code at once
// (GOMAXPROCS), unless GOMAXPROCS is set in mppd's environment. One: the
// engine's Go code per session (the protocol, TLS, the frames to the
// monitor) costs a twentieth of the sendmail run each message needs, so
// one processor keeps up with a mail system using all the others, and with
// one processor the Go scheduler hands a woken goroutine to the running
// thread instead of waking another to look for work: a third fewer system
// calls and about 0.2 ms less CPU time per session (BENCHMARKS.md).
const engineProcs = 1

// engineMain is `mppd engine`, the unprivileged process the monitor
// starts: it checks that it holds nothing, forbids itself to start
// programs, takes its configuration from the monitor's hello, and serves
// MPP on the listeners it was passed, asking the monitor for every login
// and delivery.
func engineMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mppd engine", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	uid := fs.Int("uid", -1, "")
	gid := fs.Int("gid", -1, "")
	noGroups := fs.Bool("no-groups", false, "")
	noBounding := fs.Bool("no-bounding", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *uid < 0 || *gid < 0 {
		fmt.Fprintln(stderr, "mppd engine: this is started by mppd itself, not by hand")
		return exitConfig
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mppd engine: "+format+"\n", a...)
		return exitFailure
	}

	// First of all: refuse to run with any privilege, then make sure no
	// program can ever be started from here.
	want := privdrop.Expect{UID: *uid, GID: *gid, NoGroups: *noGroups, Bounding: *noBounding}
	if err := privdrop.SelfCheck(want); err != nil {
		return fail("%v", err)
	}
	denyErr := privdrop.DenyExec()
	if denyErr != nil && !errors.Is(denyErr, privdrop.ErrUnsupported) {
		return fail("%v", denyErr)
	}

	pf := os.NewFile(engineMonitorFD, "monitor")
	conn, err := privsep.FileConn(pf)
	pf.Close()
	if err != nil {
		return fail("%v", err)
	}
	hello, err := privsep.ReadHello(conn)
	if err != nil {
		return fail("%v", err)
	}
	cfg, err := config.Parse(hello.ConfigName, []byte(hello.Config))
	if err != nil {
		fmt.Fprintf(stderr, "mppd engine: %v\n", err)
		return exitConfig
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(engineProcs)
	}
	log := newLogger(cfg, stderr)
	if denyErr != nil {
		log.Warn("the engine cannot forbid itself to start programs on this architecture", logkey.Err, denyErr)
	}
	return runEngine(cfg, hello, conn, log)
}

// runEngine serves until a signal, an exit on idle, a failed listener, or
// the monitor's end of the socketpair closing (then the status is a
// failure).
func runEngine(cfg *config.Config, hello privsep.Hello, conn *net.UnixConn, log *slog.Logger) int {
	// The monitor handles SIGHUP and sends the new certificate; a SIGHUP
	// sent to the whole unit must not end the engine.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var certs *certStore
	if hello.TLSCert != "" {
		certs = &certStore{certFile: cfg.TLS.CertFile, keyFile: cfg.TLS.KeyFile, log: log}
		if err := certs.load([]byte(hello.TLSCert), []byte(hello.TLSKey), false); err != nil {
			log.Error("cannot load the TLS certificate", logkey.Err, err)
			return exitConfig
		}
	}
	cl, err := privsep.NewClient(conn, privsep.ClientOptions{
		MaxInFlight: inFlight(cfg),
		Log:         log,
		OnTLS: func(p privsep.TLSPair) {
			if certs != nil {
				_ = certs.load([]byte(p.Cert), []byte(p.Key), true) // a failure is logged
			}
		},
	})
	if err != nil {
		log.Error("cannot talk to the monitor", logkey.Err, err)
		return exitFailure
	}
	var monitorGone atomic.Bool
	go func() {
		<-cl.Done()
		if ctx.Err() == nil {
			log.Error("the monitor is gone; stopping", logkey.Err, cl.Err())
			monitorGone.Store(true)
			stop()
		}
	}()

	set, err := engineSockets(hello.Listeners)
	if err != nil {
		log.Error("cannot use the sockets the monitor passed", logkey.Err, err)
		return exitFailure
	}
	if set.hasTLS() && certs == nil {
		log.Error("an mpps socket needs tls.cert_file and tls.key_file")
		set.close()
		return exitConfig
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

	srv := newServer(cfg, cl, cl, log, m)
	srv.Events = func(ev protocol.Event) {
		m.Observe(ev)
		if ev.Kind == protocol.EventSessionEnd {
			cl.End(ev.Session)
		}
	}
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
		notify:        cl.Notify,
	}
	if set.hasTLS() {
		d.tlsConfig = func() *tls.Config { return certs.config(cfg.TLSMinVersion()) }
	}
	if cfg.ProxyProtocol() {
		d.proxyFrom = cfg.ProxyFrom
	}
	if hello.WatchdogUSec > 0 {
		d.watchdog = time.Duration(hello.WatchdogUSec) * time.Microsecond
		log.Info("systemd watchdog", "interval", d.watchdog)
	}
	if e := cfg.Systemd.ExitOnIdle.D(); e > 0 {
		if hello.Activated {
			d.exitOnIdle = e
		} else {
			log.Info("systemd.exit_on_idle applies only when socket-activated; staying up")
		}
	}

	// No stopSignals: a terminal's ^C or a unit's KillMode= may send
	// the engine its own signal besides the one the monitor passes on;
	// the second must not cut the drain short.
	err = d.run(ctx, nil, set.mpp)
	stop()
	close(limitsStop)
	<-limitsDone
	if metricsServer != nil {
		metricsServer.Close()
		<-metricsDone
	}
	switch {
	case monitorGone.Load():
		return exitFailure
	case err != nil:
		log.Error("stopped", logkey.Err, err)
		return exitFailure
	}
	log.Info("engine stopped")
	return exitOK
}

// engineSockets makes listeners of the descriptors the monitor passed,
// from fd 4 on, in the order and with the roles the hello gives.
func engineSockets(ls []privsep.Listener) (*socketSet, error) {
	set := &socketSet{}
	for i, l := range ls {
		f := os.NewFile(uintptr(engineListenersFD+i), l.Name)
		nl, err := net.FileListener(f)
		f.Close()
		if err != nil {
			set.close()
			return nil, fmt.Errorf("fd %d (%s): %w", engineListenersFD+i, l.Name, err)
		}
		switch l.Role {
		case roleMPP, roleMPPS:
			set.mpp = append(set.mpp, roleListener{nl, l.Role})
		case roleMetrics:
			set.metrics = nl
		default:
			nl.Close()
			set.close()
			return nil, fmt.Errorf("fd %d (%s): unknown role %q", engineListenersFD+i, l.Name, l.Role)
		}
	}
	if len(set.mpp) == 0 {
		set.close()
		return nil, errors.New("no MPP listener")
	}
	return set, nil
}
