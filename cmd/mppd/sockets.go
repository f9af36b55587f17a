package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/privsep"
)

// Listener roles: what a socket serves. The names are also the default
// FileDescriptorName= of the packaged socket units.
const (
	roleMPP     = "mpp"     // plain MPP, RFC 1204 (port 218)
	roleMPPS    = "mpps"    // MPP inside TLS from the first byte
	roleMetrics = "metrics" // the Prometheus endpoint (HTTP)
)

// roleListener is a listener that knows what it serves.
type roleListener struct {
	net.Listener
	role string
}

func (l roleListener) Role() string { return l.role }

// roleOf is the role of a listener made by this file, "mpp" otherwise.
func roleOf(l net.Listener) string {
	if r, ok := l.(interface{ Role() string }); ok {
		return r.Role()
	}
	return roleMPP
}

// activationState describes LISTEN_PID and LISTEN_FDS as sd_listen_fds(3)
// reads them, for the log: whether systemd passed this process sockets,
// and if not, why they are ignored. It must be read before
// activation.Files unsets the variables.
func activationState() (passed bool, why string) {
	fds, hasFDs := os.LookupEnv("LISTEN_FDS")
	pid, hasPID := os.LookupEnv("LISTEN_PID")
	switch {
	case !hasFDs && !hasPID:
		return false, "not socket-activated (no LISTEN_FDS)"
	case pid != strconv.Itoa(os.Getpid()):
		// The variables were inherited from a parent that was itself
		// activated: the descriptors are not ours (sd_listen_fds(3)).
		return false, fmt.Sprintf("LISTEN_PID=%q is not this process (%d); the passed sockets are not for mppd", pid, os.Getpid())
	case fds == "0":
		return false, "LISTEN_FDS=0: systemd passed no socket"
	}
	if n, err := strconv.Atoi(fds); err != nil || n < 0 {
		return false, fmt.Sprintf("LISTEN_FDS=%q is not a count", fds)
	}
	return true, ""
}

// takeActivation returns the sockets systemd passed (named by
// LISTEN_FDNAMES) and unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES,
// whatever they said, so that no child process ever sees them. It must
// run before any goroutine that could read the environment starts (PAM
// and LDAP backends, the signal handlers): unsetenv is not safe against
// a concurrent getenv in C code.
func takeActivation() (files []*os.File, why string) {
	passed, why := activationState()
	files = activation.Files(true)
	if !passed {
		return nil, why
	}
	return files, ""
}

// socketSet is what mppd serves on: MPP listeners with their roles, and
// the metrics listener if any.
type socketSet struct {
	mpp     []net.Listener // roleListener: mpp or mpps
	metrics net.Listener   // nil: none
}

func (s *socketSet) close() {
	for _, l := range s.mpp {
		l.Close()
	}
	if s.metrics != nil {
		s.metrics.Close()
	}
}

func (s *socketSet) hasTLS() bool {
	return slices.ContainsFunc(s.mpp, func(l net.Listener) bool { return roleOf(l) == roleMPPS })
}

// dropTLS closes and removes the mpps listeners and returns them.
func (s *socketSet) dropTLS() []net.Listener {
	var dropped []net.Listener
	s.mpp = slices.DeleteFunc(s.mpp, func(l net.Listener) bool {
		if roleOf(l) != roleMPPS {
			return false
		}
		l.Close()
		dropped = append(dropped, l)
		return true
	})
	return dropped
}

// fromActivation maps the passed sockets to roles by their names
// (FileDescriptorName= in the socket unit) through the [systemd] section.
// Every socket must have a known name and be a listening stream socket;
// a connection (an Accept=yes unit) is refused with a message saying so.
// The files are closed; the listeners hold their own descriptors.
func fromActivation(files []*os.File, sd config.Systemd) (*socketSet, error) {
	set := &socketSet{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, f := range files {
		fd := 3 + i // SD_LISTEN_FDS_START
		name := f.Name()
		var role string
		switch {
		case slices.Contains(sd.MPPSockets, name):
			role = roleMPP
		case slices.Contains(sd.MPPSSockets, name):
			role = roleMPPS
		case slices.Contains(sd.MetricsSockets, name):
			role = roleMetrics
		default:
			set.close()
			return nil, fmt.Errorf("passed socket fd %d is named %q, which is in none of systemd.mpp_sockets %q, systemd.mpps_sockets %q, systemd.metrics_sockets %q (set FileDescriptorName= in the socket unit, or add the name to one of those keys)",
				fd, name, sd.MPPSockets, sd.MPPSSockets, sd.MetricsSockets)
		}
		if err := checkListening(f); err != nil {
			set.close()
			return nil, fmt.Errorf("passed socket fd %d (%q): %w", fd, name, err)
		}
		l, err := net.FileListener(f)
		if err != nil {
			set.close()
			return nil, fmt.Errorf("passed socket fd %d (%q): %w", fd, name, err)
		}
		if role == roleMetrics {
			if set.metrics != nil {
				l.Close()
				set.close()
				return nil, fmt.Errorf("passed socket fd %d (%q): a second metrics socket", fd, name)
			}
			set.metrics = l
			continue
		}
		set.mpp = append(set.mpp, roleListener{l, role})
	}
	if len(set.mpp) == 0 {
		set.close()
		return nil, errors.New("systemd passed no MPP socket (only metrics)")
	}
	return set, nil
}

// checkListening refuses a descriptor that is not a listening stream
// socket: a connection passed by an Accept=yes unit, a datagram socket, or
// no socket at all.
func checkListening(f *os.File) error {
	listening, err := streamSocket(f)
	if err == nil && !listening {
		err = errors.New("a connection, not a listening socket: Accept=yes is not supported, remove it from the socket unit (mppd serves every connection of one listening socket)")
	}
	return err
}

// streamSocket reports whether f is a listening stream socket, or why it
// is no stream socket at all.
func streamSocket(f *os.File) (listening bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var acceptConn, sotype int
	var serr error
	err = rc.Control(func(fd uintptr) {
		sotype, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		if serr == nil {
			acceptConn, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		}
	})
	switch {
	case err != nil:
		return false, err
	case errors.Is(serr, unix.ENOTSOCK):
		return false, errors.New("not a socket")
	case serr != nil:
		return false, serr
	case sotype != unix.SOCK_STREAM:
		return false, errors.New("not a stream socket (ListenStream= is needed)")
	}
	return acceptConn != 0, nil
}

// fromConfig binds listen (plain MPP), listen_tls and metrics.listen, or
// nothing: on an error the sockets already bound are closed.
func fromConfig(cfg *config.Config) (*socketSet, error) {
	set := &socketSet{}
	bind := func(addr, role string) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			set.close()
			return err
		}
		if role == roleMetrics {
			set.metrics = l
		} else {
			set.mpp = append(set.mpp, roleListener{l, role})
		}
		return nil
	}
	for _, a := range cfg.Listen {
		if err := bind(a, roleMPP); err != nil {
			return nil, err
		}
	}
	for _, a := range cfg.ListenTLS {
		if err := bind(a, roleMPPS); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics.Listen != "" {
		if err := bind(cfg.Metrics.Listen, roleMetrics); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// files returns a duplicate descriptor of each listener, MPP ones first and
// the metrics one last, with their names and roles, for the engine.
func (s *socketSet) files() ([]privsep.Listener, []*os.File, error) {
	var ls []privsep.Listener
	var fs []*os.File
	add := func(l net.Listener, role string) error {
		if rl, ok := l.(roleListener); ok {
			l = rl.Listener
		}
		fl, ok := l.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("listener %s has no descriptor", l.Addr())
		}
		f, err := fl.File()
		if err != nil {
			return err
		}
		ls = append(ls, privsep.Listener{Name: l.Addr().String(), Role: role})
		fs = append(fs, f)
		return nil
	}
	for _, l := range s.mpp {
		if err := add(l, roleOf(l)); err != nil {
			closeFiles(fs)
			return nil, nil, err
		}
	}
	if s.metrics != nil {
		if err := add(s.metrics, roleMetrics); err != nil {
			closeFiles(fs)
			return nil, nil, err
		}
	}
	return ls, fs, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
