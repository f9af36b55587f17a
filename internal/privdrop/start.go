package privdrop

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Options says what Start does to the forking thread besides clearing the
// ambient and inheritable sets, which it always does.
type Options struct {
	// NoNewPrivs sets no_new_privs, so the child and everything it runs
	// can never gain privileges through execve.
	NoNewPrivs bool
}

// Result reports what Start could do.
type Result struct {
	// BoundingDropped is true when the bounding set was emptied; false
	// when the process lacked CAP_SETPCAP and the set was left alone.
	BoundingDropped bool
}

// Start starts cmd (cmd.Start) from a fresh locked OS thread whose ambient
// and inheritable capability sets have been cleared, whose bounding set has
// been emptied when the process holds CAP_SETPCAP, and which has
// no_new_privs set when opts.NoNewPrivs is true. The calling goroutine and
// its thread are not changed. cmd.Wait may be called from any goroutine.
//
// cmd.SysProcAttr.Pdeathsig must not be set: it is tied to the thread that
// forked the child, and that thread ends as soon as Start returns.
func Start(cmd *exec.Cmd, opts Options) (Result, error) {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Pdeathsig != 0 {
		return Result{}, errors.New("privdrop: Pdeathsig would fire when the starting thread ends")
	}
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		// Never unlocked: the thread's capability state is changed for
		// good, so it must end with this goroutine.
		runtime.LockOSThread()
		res, err := dropOnThread(opts)
		if err == nil {
			err = cmd.Start()
		}
		done <- outcome{res, err}
	}()
	o := <-done
	return o.res, o.err
}

// dropOnThread changes the calling thread only; the caller has locked it.
func dropOnThread(opts Options) (Result, error) {
	var res Result
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return res, fmt.Errorf("privdrop: clear the ambient set: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return res, fmt.Errorf("privdrop: read capabilities: %w", err)
	}
	canSetPcap := data[0].Effective&(1<<unix.CAP_SETPCAP) != 0
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return res, fmt.Errorf("privdrop: clear the inheritable set: %w", err)
	}
	if canSetPcap {
		if err := dropBounding(); err != nil {
			return res, err
		}
		res.BoundingDropped = true
	}
	if opts.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return res, fmt.Errorf("privdrop: set no_new_privs: %w", err)
		}
	}
	return res, nil
}

// dropBounding removes every capability the kernel knows from the calling
// thread's bounding set.
func dropBounding() error {
	for c := 0; c < 64; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			if c == 0 {
				return errors.New("privdrop: the kernel knows no capability 0")
			}
			return nil // past the last capability this kernel has
		}
		if err != nil {
			return fmt.Errorf("privdrop: drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// CanDropBounding reports whether Start will be able to empty the bounding
// set: whether the calling thread holds CAP_SETPCAP in its effective set.
func CanDropBounding() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SETPCAP) != 0
}

// Starter starts commands like Start, but all from one locked OS thread
// that it keeps: the thread's state is changed once, on the first Start,
// and that thread then forks every child. Start pays for a new thread,
// its capability system calls, and the thread's end on every child; a
// server that starts a child per message (sendmail) uses a Starter
// instead. The thread, like Start's, is never unlocked and runs nothing
// but the starts, so no other goroutine ever runs with its reduced state.
// Starts are made one at a time, in order; each blocks the thread only
// until the child has been created (os/exec forks with vfork semantics,
// so until the child has called execve).
//
// A Starter's thread lives as long as the process. It is safe for
// concurrent use.
type Starter struct {
	opts Options
	once sync.Once
	mu   sync.Mutex // one request and its answer at a time
	reqs chan *exec.Cmd
	outs chan error
	res  Result
	err  error // from dropping: every Start fails with it
}

// NewStarter returns a Starter for opts; its thread is made on the first
// Start.
func NewStarter(opts Options) *Starter {
	return &Starter{opts: opts}
}

// Start starts cmd from the Starter's thread. The same restrictions as for
// the function Start apply.
func (s *Starter) Start(cmd *exec.Cmd) (Result, error) {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Pdeathsig != 0 {
		return Result{}, errors.New("privdrop: Pdeathsig is tied to the starting thread")
	}
	s.once.Do(s.run)
	if s.err != nil {
		return s.res, s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs <- cmd
	return s.res, <-s.outs
}

// run starts the thread and waits until its state is changed.
func (s *Starter) run() {
	s.reqs, s.outs = make(chan *exec.Cmd), make(chan error)
	ready := make(chan struct{})
	go func() {
		// Never unlocked, and the goroutine never returns.
		runtime.LockOSThread()
		s.res, s.err = dropOnThread(s.opts)
		close(ready)
		if s.err != nil {
			return // the thread ends with the goroutine
		}
		for cmd := range s.reqs {
			s.outs <- cmd.Start()
		}
	}()
	<-ready
}
