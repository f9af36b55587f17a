package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/privdrop"
	"github.com/mppd/mppd/internal/privsep"
	"github.com/mppd/mppd/internal/sendlimit"
)

// engineCommand is the hidden subcommand the monitor starts the engine
// with.
const engineCommand = "engine"

// engineExitGrace is how long the monitor waits for the engine to exit,
// once the engine has closed its end of the socketpair or been sent
// SIGTERM for a protocol violation, before SIGKILL.
const engineExitGrace = 10 * time.Second

// monitorSetup is what main hands the monitor.
type monitorSetup struct {
	cfg          *config.Config
	configText   []byte
	auth         authn.Authenticator
	deliv        delivery.Deliverer
	files        []*os.File // the sockets systemd passed, nil when not activated
	notActivated string     // why not, for the log
	stderr       io.Writer
	log          *slog.Logger
}

// inFlight is the most auth and deliver requests the engine may have
// waiting at once: each session has at most one, plus a little room.
func inFlight(cfg *config.Config) int { return cfg.MaxSessions + 8 }

// maxStaged is the largest staged message the monitor accepts: the text,
// its header, and room for the trace fields mppd adds.
func maxStaged(cfg *config.Config) int64 {
	return cfg.Message.MaxSize + int64(cfg.Message.MaxHeaderSize) + 64<<10
}

// monitorProcs is how many goroutines of the monitor may run Go code at
// once (GOMAXPROCS), or 0 to keep Go's default (one per CPU). The
// monitor's work is system calls, cgo calls into PAM and NSS, and its
// children; its own Go code is a few microseconds per request. With one
// processor the Go scheduler hands a woken goroutine to the running thread
// instead of waking a second one to look for work, which spared about a
// tenth of the monitor's CPU time per session (BENCHMARKS.md). A blocking
// system call or cgo call still lets another goroutine run (the runtime
// hands the processor on), so concurrent PAM logins and sendmail runs
// still overlap. The password-file backend is the exception: its argon2id
// hash is Go code, and concurrent logins need every CPU. A GOMAXPROCS set
// in the environment is left to the runtime.
func monitorProcs(cfg *config.Config) int {
	if cfg.Authn.Backend == "passwdfile" || os.Getenv("GOMAXPROCS") != "" {
		return 0
	}
	return 1
}

// runMonitor is the privileged process: it takes or binds the sockets,
// starts the engine with them and with nothing else, answers the engine's
// requests, and forwards signals. It returns the process's exit status.
func runMonitor(ms monitorSetup) int {
	cfg, log := ms.cfg, ms.log
	if n := monitorProcs(cfg); n > 0 {
		runtime.GOMAXPROCS(n)
	}

	// SIGHUP before anything else: its default action ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(term)

	eng, err := engineIdentity(cfg)
	if err != nil {
		log.Error("cannot run the engine", logkey.Err, err)
		return exitConfig
	}

	var pair privsep.TLSPair
	if cfg.TLS.CertFile != "" {
		if pair, err = readTLSPair(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			log.Error("cannot load the TLS certificate", logkey.Err, err)
			return exitConfig
		}
	}

	set, code := monitorSockets(ms)
	if set == nil {
		return code
	}
	if set.hasTLS() && cfg.TLS.CertFile == "" {
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
	listeners, files, err := set.files()
	set.close() // the engine gets duplicates; the monitor keeps no listener
	if err != nil {
		log.Error("cannot pass the sockets to the engine", logkey.Err, err)
		return exitFailure
	}

	hello := privsep.Hello{
		ConfigName: absPath(cfg.Path),
		Config:     string(ms.configText),
		Listeners:  listeners,
		TLSCert:    pair.Cert,
		TLSKey:     pair.Key,
		Activated:  ms.files != nil,
	}
	if wd, err := sd.SdWatchdogEnabled(false); err == nil && wd > 0 {
		hello.WatchdogUSec = wd.Microseconds()
	}

	if err := privsep.CheckHello(hello); err != nil {
		log.Error("the configuration and TLS files are too large to hand to the engine", logkey.Err, err)
		closeFiles(files)
		return exitConfig
	}

	conn, cmd, err := startEngine(eng, files, ms.stderr, log)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		log.Error("cannot start the engine", logkey.Err, err)
		return exitFailure
	}
	defer conn.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	if err := privsep.SendHello(conn, hello); err != nil {
		log.Error("cannot send the engine its configuration", logkey.Err, err)
		cmd.Process.Kill()
		<-exited
		return exitFailure
	}

	mlog := log.With("component", "monitor")
	mon := &privsep.Monitor{
		Auth:           ms.auth,
		Delivery:       ms.deliv,
		SessionTimeout: cfg.Session.SessionTimeout.D(),
		MaxInFlight:    inFlight(cfg),
		MaxRecipients:  cfg.Message.MaxRecipients,
		MaxMessage:     maxStaged(cfg),
		Log:            mlog,
		// Stop the engine at once; the monitor reads nothing more from
		// it and finishes the deliveries under way before it exits.
		OnViolation: func() { cmd.Process.Signal(syscall.SIGTERM) },
	}
	if ac, ok := ms.deliv.(delivery.AccountChecker); ok {
		mon.Accounts = ac
	}
	// The monitor holds every login to the sending limits too, so that
	// an engine under an attacker's control is still held to them; the
	// engine checks first, with the same configuration.
	if lim := sendlimit.New(sendLimitConfig(cfg), mlog); lim.Enabled() {
		mon.SendLimit = lim
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		mon.Notify = sdNotify
	}
	served := make(chan error, 1)
	go func() { served <- mon.Serve(context.Background(), conn) }()

	var serveErr, waitErr error
	var haveServe, haveWait, stopping bool
	for !haveServe || !haveWait {
		select {
		case sig := <-term:
			// The engine drains; the monitor serves its requests
			// (deliveries under way) until it exits. Only the first
			// signal is passed on: the engine may have had its own
			// (^C goes to the whole process group), and the drain
			// is bounded by drain_timeout and the delivery timeout.
			if stopping {
				log.Info("already stopping", "signal", sig.String())
				continue
			}
			stopping = true
			log.Info("stopping the engine", "signal", sig.String())
			cmd.Process.Signal(sig)
		case <-hup:
			reloadTLS(cfg, conn, log)
		case serveErr = <-served:
			// A violation has had the engine sent SIGTERM already
			// (OnViolation); otherwise the engine closed its end and
			// is exiting. Either way it gets a grace, then SIGKILL.
			haveServe = true
			stopEngine(cmd, exited, &waitErr, &haveWait, engineExitGrace)
		case waitErr = <-exited:
			haveWait = true
		}
	}
	if serveErr != nil {
		log.Error("stopped the engine", logkey.Err, serveErr)
		return exitFailure
	}
	return engineStatus(waitErr, log)
}

// stopEngine waits up to grace for the engine to exit, then kills it.
func stopEngine(cmd *exec.Cmd, exited <-chan error, waitErr *error, haveWait *bool, grace time.Duration) {
	if *haveWait {
		return
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case *waitErr = <-exited:
	case <-t.C:
		cmd.Process.Kill()
		*waitErr = <-exited
	}
	*haveWait = true
}

// engineStatus is the monitor's exit status for the engine's: the same
// when the engine exited by itself, failure when a signal ended it.
func engineStatus(err error, log *slog.Logger) int {
	if err == nil {
		log.Info("stopped")
		return exitOK
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		log.Error("the engine exited", "status", ee.ExitCode())
		return ee.ExitCode()
	}
	log.Error("the engine ended", logkey.Err, err)
	return exitFailure
}

// engineID is who the engine runs as, and what its self-check expects.
type engineID struct {
	cred   *syscall.Credential // nil: keep the monitor's uid (not root)
	expect privdrop.Expect
	name   string
}

// engineIdentity looks up engine_user when the monitor runs as root; an
// ordinary user's monitor runs its engine as itself.
func engineIdentity(cfg *config.Config) (engineID, error) {
	bounding := privdrop.CanDropBounding()
	if os.Geteuid() != 0 {
		return engineID{expect: privdrop.Expect{UID: os.Getuid(), GID: os.Getgid(), Bounding: bounding}}, nil
	}
	u, err := userLookup(cfg.EngineUser)
	if err != nil {
		return engineID{}, fmt.Errorf("engine_user %q: %w (the packages create it; see mppd.conf(5))", cfg.EngineUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return engineID{}, fmt.Errorf("engine_user %q: %w", cfg.EngineUser, err)
	}
	if uid == 0 || gid == 0 {
		return engineID{}, fmt.Errorf("engine_user %q has uid or gid 0", cfg.EngineUser)
	}
	return engineID{
		cred:   &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		expect: privdrop.Expect{UID: int(uid), GID: int(gid), NoGroups: true, Bounding: bounding},
		name:   u.Username,
	}, nil
}

// startEngine starts `mppd engine` with the socketpair as fd 3 and the
// listeners after it, through privdrop.Start: no capability, no
// supplementary group, no_new_privs, and engine_user's uid when root.
func startEngine(eng engineID, listeners []*os.File, stderr io.Writer, log *slog.Logger) (*net.UnixConn, *exec.Cmd, error) {
	conn, engineEnd, err := privsep.Pair()
	if err != nil {
		return nil, nil, err
	}
	defer engineEnd.Close()
	args := []string{engineCommand,
		"--uid", strconv.Itoa(eng.expect.UID), "--gid", strconv.Itoa(eng.expect.GID)}
	if eng.expect.NoGroups {
		args = append(args, "--no-groups")
	}
	if eng.expect.Bounding {
		args = append(args, "--no-bounding")
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = os.Args[0]
	cmd.ExtraFiles = append([]*os.File{engineEnd}, listeners...)
	cmd.Stderr = stderr
	cmd.Dir = "/"
	cmd.Env = engineEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: eng.cred}
	res, err := privdrop.Start(cmd, privdrop.Options{NoNewPrivs: true})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if !res.BoundingDropped {
		log.Debug("no CAP_SETPCAP: the engine keeps the bounding set (it holds no capability)")
	}
	log.Info("engine started", "pid", cmd.Process.Pid, "uid", eng.expect.UID, "gid", eng.expect.GID)
	return conn, cmd, nil
}

// engineEnv is the engine's whole environment: only what its log format
// depends on, and GOMAXPROCS when the administrator set it. NOTIFY_SOCKET
// in particular stays with the monitor, which is the unit's main process.
func engineEnv() []string {
	var env []string
	for _, k := range []string{"JOURNAL_STREAM", "TZ", "GOMAXPROCS"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// readTLSPair reads a certificate chain and its key, and checks that they
// load together.
func readTLSPair(certFile, keyFile string) (privsep.TLSPair, error) {
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return privsep.TLSPair{}, err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return privsep.TLSPair{}, err
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return privsep.TLSPair{}, fmt.Errorf("TLS certificate %s, key %s: %w", certFile, keyFile, err)
	}
	return privsep.TLSPair{Cert: string(cert), Key: string(key)}, nil
}

// reloadTLS is what SIGHUP does: read the TLS certificate and key again
// and hand them to the engine. A pair that does not load is logged and the
// engine keeps the one it has. The rest of the configuration is not
// reloaded: limits, backends and addresses are fixed for the life of the
// process (restart mppd; under socket activation no connection is lost).
func reloadTLS(cfg *config.Config, conn *net.UnixConn, log *slog.Logger) {
	notify := func(state string) {
		if os.Getenv("NOTIFY_SOCKET") != "" {
			if err := sdNotify(state); err != nil {
				log.Warn("sd_notify failed", logkey.Err, err)
			}
		}
	}
	notify(reloadingState())
	defer notify("READY=1")
	if cfg.TLS.CertFile == "" {
		log.Info("SIGHUP: no TLS certificate to reload", logkey.Event, logkey.EventReload)
		return
	}
	pair, err := readTLSPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		log.Error("certificate reload failed, keeping the one in use", logkey.Event, logkey.EventTLSReload,
			"result", "failed", logkey.Err, err)
		return
	}
	if err := privsep.SendTLS(conn, pair); err != nil {
		log.Error("cannot send the new certificate to the engine", logkey.Err, err)
	}
}

// monitorSockets takes the sockets systemd passed, or binds the configured
// addresses. On failure it returns nil and the exit status.
func monitorSockets(ms monitorSetup) (*socketSet, int) {
	cfg, log := ms.cfg, ms.log
	if ms.files == nil {
		log.Info("binding the configured addresses", "why", ms.notActivated)
		set, err := fromConfig(cfg)
		if err != nil {
			log.Error("cannot listen", logkey.Err, err)
			return nil, exitFailure
		}
		return set, exitOK
	}
	set, err := fromActivation(ms.files, cfg.Systemd)
	if err != nil {
		log.Error("cannot use the sockets systemd passed", logkey.Err, err)
		return nil, exitConfig
	}
	log.Info("socket-activated", "sockets", len(ms.files))
	if set.metrics == nil && cfg.Metrics.Listen != "" {
		if set.metrics, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			log.Error("cannot listen", logkey.Err, err)
			set.close()
			return nil, exitFailure
		}
	}
	return set, exitOK
}

// userLookup is user.Lookup (a variable for tests).
var userLookup = user.Lookup

// absPath makes the config file's name absolute for the engine, whose
// working directory is "/": relative paths in the file are taken from the
// file's directory.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
