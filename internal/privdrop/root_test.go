//go:build integration

package privdrop

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testenv"
)

// nobody is the kernel's overflow uid and gid (nobody, nogroup on Debian).
const nobody = 65534

// TestStartAsRoot: root starts a child as nobody through Start with
// no_new_privs, the way the monitor starts the engine. Every capability
// set of the child is empty, bounding included, and no_new_privs is set.
func TestStartAsRoot(t *testing.T) {
	testenv.NeedRoot(t)
	st := runStatus(t, helperCmd(t, "start-child", "PRIVDROP_TEST_HOW=start-nnp", "PRIVDROP_TEST_UID="+strconv.Itoa(nobody)))
	if err := CheckStatus(st, Expect{UID: nobody, GID: nobody, NoGroups: true, Bounding: true}); err != nil {
		t.Fatal(err)
	}
}

// TestStartAsRootWithoutNoNewPrivs is the sendmail case in root mode: the
// sets are empty, no_new_privs is not set (postdrop is set-group-ID).
// A Starter (what the sendmail backend uses) gives every child the same.
func TestStartAsRootWithoutNoNewPrivs(t *testing.T) {
	testenv.NeedRoot(t)
	for _, how := range []string{"start", "starter"} {
		st := runStatus(t, helperCmd(t, "start-child", "PRIVDROP_TEST_HOW="+how, "PRIVDROP_TEST_UID="+strconv.Itoa(nobody)))
		if st.CapPrm|st.CapEff|st.CapInh|st.CapAmb|st.CapBnd != 0 {
			t.Fatalf("%s: child holds capabilities: %+v", how, st)
		}
		if st.NoNewPrivs {
			t.Fatalf("%s: no_new_privs set though not asked for", how)
		}
	}
}

// nonRootHelper returns a command that runs the test binary as nobody with
// ambient CAP_SETUID and CAP_SETGID: mppd's documented non-root mode. The
// binary is copied where nobody may run it.
func nonRootHelper(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	copyExe := testenv.CopyTestBinary(t)
	cmd := helperCmd(t, "start-child", env...)
	cmd.Path, cmd.Args[0] = copyExe, copyExe
	cmd.Dir = "/"
	testenv.AsUser(cmd, nobody, nobody)
	cmd.SysProcAttr.AmbientCaps = []uintptr{6, 7} // CAP_SETGID, CAP_SETUID
	return cmd
}

// TestStartNonRootAmbient: a process running as nobody with ambient
// CAP_SETUID and CAP_SETGID starts children. Started plainly (the
// control), the child keeps the capabilities; started through Start, its
// permitted, effective, inheritable and ambient sets are empty, both when
// it keeps the uid and when it switches to another one (sendmail as the
// user). The bounding set stays, since nobody lacks CAP_SETPCAP.
func TestStartNonRootAmbient(t *testing.T) {
	testenv.NeedRoot(t)
	control := runStatus(t, nonRootHelper(t, "PRIVDROP_TEST_HOW=plain"))
	if control.CapAmb&0xc0 != 0xc0 || control.CapEff&0xc0 != 0xc0 {
		t.Fatalf("control: a plainly started child should keep ambient CAP_SETUID/CAP_SETGID, got %+v", control)
	}
	for _, tc := range []struct {
		name string
		env  []string
		uid  uint64
	}{
		{"same uid", []string{"PRIVDROP_TEST_HOW=start"}, nobody},
		{"switched uid", []string{"PRIVDROP_TEST_HOW=start", "PRIVDROP_TEST_UID=65533"}, 65533},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := runStatus(t, nonRootHelper(t, tc.env...))
			if st.CapPrm|st.CapEff|st.CapInh|st.CapAmb != 0 {
				t.Fatalf("child holds capabilities: Prm %x Eff %x Inh %x Amb %x", st.CapPrm, st.CapEff, st.CapInh, st.CapAmb)
			}
			if st.UID[0] != tc.uid || st.UID[1] != tc.uid {
				t.Fatalf("child uid %v, want %d", st.UID, tc.uid)
			}
		})
	}
}

// runStatus runs cmd, which prints a /proc/PID/status text, and parses it.
func runStatus(t *testing.T, cmd *exec.Cmd) Status {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	st, err := ParseStatus(string(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return st
}
