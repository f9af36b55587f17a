package testenv

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// Process is a server that a test runs, starts again and stops (slapd,
// samba): the command running now and the output of every command it
// started. The zero Process runs nothing.
type Process struct {
	Log LogBuffer // standard output and error, of every start in turn

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd with its standard output and error in Log. The
// channel it returns is closed when cmd has exited.
func (p *Process) Start(cmd *exec.Cmd) (<-chan struct{}, error) {
	cmd.Stdout, cmd.Stderr = &p.Log, &p.Log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return done, nil
}

// Running returns the command started last, or nil once Take has taken
// it.
func (p *Process) Running() *exec.Cmd {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd
}

// Take returns the running command and its channel from Start and
// forgets them, so that only one caller stops it; cmd is nil when none
// runs.
func (p *Process) Take() (cmd *exec.Cmd, done <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, done = p.cmd, p.done
	p.cmd = nil
	return cmd, done
}

// CertPool returns a pool of the certificates in the PEM file path, such
// as the CA of a test server.
func CertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
