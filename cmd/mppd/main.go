// Command mppd is the Message Posting Protocol daemon (RFC 1204).
//
//	mppd [--config FILE]        serve (default FILE: /etc/mppd/mppd.toml)
//	mppd --check-config         load the config, build the backends, say "config OK"
//	mppd --version              print the version
//	mppd passwd [flags]         add a user to the password file, or change a password
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT) or a successful
// check; 1 when serving fails at run time (a listen address cannot be
// bound); 2 for a bad command line, a bad config file, or a backend that
// cannot be built from it. Status 2 is a mistake a restart cannot fix, so
// the systemd unit lists it in RestartPreventExitStatus=.
//
// main only wires: flags, config, logger, backends, listeners; the accept
// loop is in serve.go and the protocol in package protocol.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"mppd/internal/config"
	"mppd/protocol"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "devel"

// Exit statuses, documented in mppd(8).
const (
	exitOK      = 0
	exitFailure = 1 // run-time failure: cannot listen
	exitConfig  = 2 // bad usage, config or backend: do not restart
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
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mppd [--config FILE] [--check-config] [--version]\n"+
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
		fmt.Fprintf(stderr, "mppd: %v\n", err)
		return exitConfig
	}
	log := newLogger(cfg, stderr)
	auth, err := cfg.BuildAuthenticator(log.With("component", "authn"))
	if err != nil {
		fmt.Fprintf(stderr, "mppd: %s: %v\n", cfg.Path, err)
		return exitConfig
	}
	deliv, err := cfg.BuildDeliverer(log.With("component", "delivery"))
	if err != nil {
		fmt.Fprintf(stderr, "mppd: %s: %v\n", cfg.Path, err)
		return exitConfig
	}
	if *check {
		fmt.Fprintln(stdout, "config OK")
		return exitOK
	}

	log.Info("starting", "version", version, "config", cfg)
	log.Info("backends", "authn", fmt.Sprint(auth), "delivery", fmt.Sprint(deliv))

	// Socket activation (a later issue) supplies listeners here instead
	// of binding them.
	listeners, err := listenAll(cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return exitFailure
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv := &protocol.Server{
		Config:   cfg.Protocol(),
		Auth:     auth,
		Delivery: deliv,
		Log:      log,
	}
	d := &daemon{
		serve:        srv.Serve,
		refuse:       protocol.Refuse,
		log:          log,
		maxSessions:  cfg.MaxSessions,
		maxPerClient: cfg.MaxSessionsPerClient,
		trusted:      cfg.Trusted,
		drainTimeout: cfg.DrainTimeout.D(),
	}
	if err := d.run(ctx, stop, listeners); err != nil {
		log.Error("stopped", "err", err)
		return exitFailure
	}
	log.Info("stopped")
	return exitOK
}

// newLogger returns the daemon's logger: log/slog to stderr, text or JSON.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listenAll binds every configured address, or none: on an error the ones
// already bound are closed.
func listenAll(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}
