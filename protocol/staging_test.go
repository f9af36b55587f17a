package protocol

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/delivery"
)

// stagingProbe is a deliverer that looks at how the message reaches it:
// the file it is given, and every file open in the staging directory at
// that moment.
type stagingProbe struct {
	dir string

	mu     sync.Mutex
	isFile bool
	linked uint64
	inDir  bool
	copies int // files open in the staging directory during Deliver
	text   string
}

func (p *stagingProbe) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.copies = openFilesUnder(p.dir)
	if f, ok := msg.(*os.File); ok {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		p.isFile = st.Mode&unix.S_IFMT == unix.S_IFREG
		p.linked = uint64(st.Nlink)
		link, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		p.inDir = strings.HasPrefix(link, p.dir+"/")
	}
	b, err := io.ReadAll(msg)
	p.text = string(b)
	return err
}

// openFilesUnder counts this process's descriptors on files in dir.
func openFilesUnder(dir string) int {
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(link, dir+"/") {
			n++
		}
	}
	return n
}

// The message is staged once, as it is delivered (trace fields and all),
// in one unlinked file in the staging directory that the backend gets as
// the message itself; nothing goes to the system's temporary directory
// (TMPDIR points at a directory that does not exist), whether the message
// stays under the memory threshold or passes it.
func TestMessageStagedOnceInStagingDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"small", "Hello Bob.\r\n"},
		{"past-threshold", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 40_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(cfg *Config) { cfg.MemoryThreshold = 64 << 10 })
			probe := &stagingProbe{dir: ts.srv.Config.StagingDir}
			ts.srv.Delivery = probe
			t.Setenv("TMPDIR", "/nonexistent-mppd-tmpdir")
			c := ts.dial()
			c.Login("alice", "alice-pw")
			c.PostRaw("To: bob@example.test\r\nSubject: hi\r\n\r\n"+tc.body, 250)
			c.Cmd("QUIT", 221)

			probe.mu.Lock()
			defer probe.mu.Unlock()
			if !probe.isFile || probe.linked != 0 || !probe.inDir {
				t.Fatalf("the backend got file=%v links=%d in the staging directory=%v; want an unlinked regular file there",
					probe.isFile, probe.linked, probe.inDir)
			}
			if probe.copies != 1 {
				t.Fatalf("%d files open in the staging directory during delivery, want 1", probe.copies)
			}
			body := strings.ReplaceAll(tc.body, "\r\n", "\n")
			if !strings.HasPrefix(probe.text, "Received: ") || !strings.Contains(probe.text, "\nSubject: hi\n") ||
				!strings.HasSuffix(probe.text, "\n\n"+body) {
				t.Fatalf("the staged message is not the prepared one: %.200q ... %d octets", probe.text, len(probe.text))
			}
			if n := openFilesUnder(probe.dir); n != 0 {
				t.Errorf("%d staging files still open after the session", n)
			}
		})
	}
}
