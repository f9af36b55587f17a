package privdrop

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const sampleStatus = `Name:	cat
Umask:	0022
State:	R (running)
Uid:	65534	65534	65534	65534
Gid:	65534	65534	65534	65534
FDSize:	64
Groups:	65534 
NoNewPrivs:	1
CapInh:	0000000000000000
CapPrm:	0000000000000000
CapEff:	0000000000000000
CapBnd:	0000000000000000
CapAmb:	0000000000000000
Seccomp:	0
`

func TestParseStatus(t *testing.T) {
	st, err := ParseStatus(sampleStatus)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{UID: [4]uint64{65534, 65534, 65534, 65534}, GID: [4]uint64{65534, 65534, 65534, 65534},
		Groups: []uint64{65534}, NoNewPrivs: true}
	if st.UID != want.UID || st.GID != want.GID || len(st.Groups) != 1 || st.Groups[0] != 65534 || !st.NoNewPrivs ||
		st.CapInh|st.CapPrm|st.CapEff|st.CapBnd|st.CapAmb != 0 {
		t.Fatalf("got %+v", st)
	}
	if err := CheckStatus(st, Expect{UID: 65534, GID: 65534, NoGroups: true, Bounding: true}); err != nil {
		t.Fatal(err)
	}

	for _, line := range []string{"CapAmb:", "NoNewPrivs:", "Uid:", "Groups:"} {
		var kept []string
		for _, l := range strings.Split(sampleStatus, "\n") {
			if !strings.HasPrefix(l, line) {
				kept = append(kept, l)
			}
		}
		if _, err := ParseStatus(strings.Join(kept, "\n")); err == nil {
			t.Errorf("a status without %s parsed", line)
		}
	}
	for _, bad := range []string{"CapEff:\tzz", "NoNewPrivs:\t2", "Uid:\t1 2 3", "Groups:\tx"} {
		if _, err := ParseStatus(sampleStatus + bad + "\n"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCheckStatusNamesEveryProblem(t *testing.T) {
	st, err := ParseStatus(sampleStatus)
	if err != nil {
		t.Fatal(err)
	}
	st.CapPrm, st.CapEff, st.CapInh, st.CapAmb, st.CapBnd = 0xc0, 0xc0, 1, 0xc0, 0x1ff
	st.NoNewPrivs = false
	st.UID[1] = 0
	st.Groups = append(st.Groups, 27)
	err = CheckStatus(st, Expect{UID: 65534, GID: 65534, NoGroups: true, Bounding: true})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CapPrm", "CapEff", "CapInh", "CapAmb", "CapBnd", "NoNewPrivs", "uid 1 is 0", "supplementary group 27"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// Without NoGroups and Bounding, those two are not problems.
	st.CapPrm, st.CapEff, st.CapInh, st.CapAmb = 0, 0, 0, 0
	st.NoNewPrivs, st.UID[1] = true, 65534
	if err := CheckStatus(st, Expect{UID: 65534, GID: 65534}); err != nil {
		t.Fatal(err)
	}
}

// TestSelfCheckOfThisProcess: the test process is not a dropped engine, so
// the self-check must say so rather than pass.
func TestSelfCheckOfThisProcess(t *testing.T) {
	st, err := ReadStatus(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.NoNewPrivs {
		t.Skip("the test runs with no_new_privs already")
	}
	if err := SelfCheck(Expect{UID: os.Getuid(), GID: os.Getgid()}); err == nil || !strings.Contains(err.Error(), "NoNewPrivs is 0") {
		t.Fatalf("SelfCheck = %v, want a NoNewPrivs complaint", err)
	}
}

// TestExecFilterLayout checks the jumps of the BPF program: every jump
// lands inside the program, every true branch of a syscall test lands on
// the deny instruction, and the program ends allow, deny.
func TestExecFilterLayout(t *testing.T) {
	if filterArch == 0 {
		t.Skip("no filter on this architecture")
	}
	p := execFilter()
	n := len(p)
	if p[n-2].K != 0x7fff0000 || p[n-1].K&0xffff0000 != 0x50000 || p[n-1].K&0xffff != 1 {
		t.Fatalf("program does not end allow, EPERM: %+v", p[n-2:])
	}
	for i, ins := range p {
		if ins.Code&0x07 != 0x05 { // not BPF_JMP
			continue
		}
		if i+1+int(ins.Jt) >= n || i+1+int(ins.Jf) >= n {
			t.Fatalf("instruction %d jumps out of the program", i)
		}
		if i == 1 { // the arch check: false goes to deny
			if i+1+int(ins.Jf) != n-1 || ins.Jt != 0 {
				t.Fatalf("arch check %+v does not deny a foreign arch", ins)
			}
			continue
		}
		if i+1+int(ins.Jt) != n-1 {
			t.Errorf("test %d (K=%#x) does not deny on a match", i, ins.K)
		}
	}
}

// TestDenyExec runs a helper that installs the filter and then fails to
// start programs through os/exec, execve, execveat and from a thread that
// existed before the filter.
func TestDenyExec(t *testing.T) {
	if filterArch == 0 {
		t.Skip("no filter on this architecture")
	}
	out, err := helperCmd(t, "deny-exec").CombinedOutput()
	t.Logf("helper:\n%s", out)
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	for _, want := range []string{"os/exec:", "execve:", "execve on an older thread:", "execveat:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("helper did not try %s", want)
		}
	}
}

// TestStartKeepsCallerIntact: the thread Start changes ends with its
// goroutine (or, if it is the main thread, is parked for good), so no
// goroutine afterwards runs with a reduced state.
func TestStartKeepsCallerIntact(t *testing.T) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	before, err := ParseStatus(string(b))
	if err != nil {
		t.Fatal(err)
	}
	starter := NewStarter(Options{NoNewPrivs: true})
	for range 20 {
		cmd := exec.Command("/bin/true")
		if _, err := Start(cmd, Options{NoNewPrivs: true}); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		// A Starter's thread keeps its state but runs nothing else.
		cmd = exec.Command("/bin/true")
		if _, err := starter.Start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// Many goroutines on many threads: none may see no_new_privs or a
	// smaller bounding set.
	type res struct {
		st  Status
		err error
	}
	ch := make(chan res)
	for range 50 {
		go func() {
			b, err := os.ReadFile("/proc/thread-self/status")
			if err != nil {
				ch <- res{err: err}
				return
			}
			st, err := ParseStatus(string(b))
			ch <- res{st, err}
		}()
	}
	for range 50 {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.st.NoNewPrivs != before.NoNewPrivs || r.st.CapBnd != before.CapBnd || r.st.CapEff != before.CapEff {
			t.Fatalf("a thread has changed state: %+v, before %+v", r.st, before)
		}
	}
}

func TestStartRefusesPdeathsig(t *testing.T) {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if _, err := Start(cmd, Options{}); err == nil {
		cmd.Wait()
		t.Fatal("Start accepted Pdeathsig")
	}
	if _, err := NewStarter(Options{}).Start(cmd); err == nil {
		cmd.Wait()
		t.Fatal("Starter.Start accepted Pdeathsig")
	}
}
