package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// helperEnv names the helper a re-executed test binary runs instead of the
// tests. Helpers change the state of their own process for good (a seccomp
// filter, a uid), which the test process must not suffer.
const helperEnv = "PRIVDROP_TEST_HELPER"

func TestMain(m *testing.M) {
	switch h := os.Getenv(helperEnv); h {
	case "":
		os.Exit(m.Run())
	case "deny-exec":
		os.Exit(helperDenyExec())
	case "start-child":
		os.Exit(helperStartChild())
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", h)
		os.Exit(2)
	}
}

// helperDenyExec installs the exec filter and then tries to start programs
// in several ways, from a thread that existed before the filter (TSYNC
// must cover it) and from a new one. It prints one line per attempt and
// exits 0 only if every attempt failed with EPERM and ordinary system calls
// still work.
func helperDenyExec() int {
	// A thread locked before the filter exists, to show TSYNC reaches it.
	early := make(chan func() error)
	earlyErr := make(chan error)
	go func() {
		runtime.LockOSThread()
		for f := range early {
			earlyErr <- f()
		}
	}()
	early <- func() error { return nil }
	<-earlyErr

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	if err := DenyExec(); err != nil {
		fmt.Println("DenyExec:", err)
		return 1
	}
	ok := true
	check := func(what string, err error) {
		fmt.Printf("%s: %v\n", what, err)
		if !errors.Is(err, syscall.EPERM) {
			ok = false
		}
	}
	check("os/exec", exec.Command("/bin/true").Run())
	check("execve", syscall.Exec("/bin/true", []string{"true"}, nil))
	early <- func() error { return syscall.Exec("/bin/true", []string{"true"}, nil) }
	check("execve on an older thread", <-earlyErr)
	check("execveat", execveat("/bin/true"))
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		fmt.Println("read after filter:", err)
		ok = false
	}
	if !ok {
		return 1
	}
	return 0
}

func execveat(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	argv := []*byte{p, nil}
	envv := []*byte{nil}
	dirfd := unix.AT_FDCWD
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// helperStartChild starts `cat /proc/self/status` and copies its output
// to stdout. PRIVDROP_TEST_HOW says how: "plain" (cmd.Start, the control),
// "start" (Start), "start-nnp" (Start with NoNewPrivs) or "starter" (the
// third child of one Starter: the thread's state holds for every start).
// PRIVDROP_TEST_UID, when set, is the uid and gid the child switches to.
func helperStartChild() int {
	cmd := exec.Command("/bin/cat", "/proc/self/status")
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if s := os.Getenv("PRIVDROP_TEST_UID"); s != "" {
		id, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(id), Gid: uint32(id), Groups: []uint32{}}}
	}
	var err error
	switch how := os.Getenv("PRIVDROP_TEST_HOW"); how {
	case "plain":
		err = cmd.Start()
	case "start":
		_, err = Start(cmd, Options{})
	case "start-nnp":
		_, err = Start(cmd, Options{NoNewPrivs: true})
	case "starter":
		st := NewStarter(Options{})
		for i := 0; i < 2 && err == nil; i++ {
			c := exec.Command("/bin/true")
			c.SysProcAttr = cmd.SysProcAttr
			if _, err = st.Start(c); err == nil {
				err = c.Wait()
			}
		}
		if err == nil {
			_, err = st.Start(cmd)
		}
	default:
		err = fmt.Errorf("unknown PRIVDROP_TEST_HOW %q", how)
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// helperCmd returns a command that re-executes the test binary as helper.
func helperCmd(t *testing.T, helper string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+helper)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}
