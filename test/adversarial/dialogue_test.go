package adversarial

import (
	"os"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/dialogue"
	"github.com/mppd/mppd/internal/testharness"
)

// TestDialogues plays every testdata/*.dlg (the dialogues whose outcome
// hangs on the daemon: the password-file backend, the maildir, the log
// handler, the config defaults; protocol's tests play the whole catalogue
// against the engine in-process) against the built mppd: the exact bytes
// of each client step, the code (and text) of each reply, the close, how
// many copies were delivered and what they hold, and the log lines. Scripts with the same config share a daemon and run one after the
// other, so that deliveries and log lines belong to one script.
func TestDialogues(t *testing.T) {
	scripts, err := dialogue.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]*dialogue.Script{}
	var order []string
	for _, s := range scripts {
		k := strings.Join(s.Config, "\n")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], s)
	}
	for _, k := range order {
		d := startDaemon(t, k)
		for _, s := range groups[k] {
			t.Run(s.Name, func(t *testing.T) { play(t, d, s) })
		}
	}
}

// play runs one script against d.
func play(t *testing.T, d *daemon, s *dialogue.Script) {
	offset := len(d.Log())
	before := d.deliveredFiles()
	ended := strings.Count(d.Log(), "event=disconnect")

	c := d.Dial(t)
	testharness.Play(t, c, s)
	c.Close()
	d.WaitLogCount(0, "event=disconnect", ended+1)

	var copies []string
	for f := range d.deliveredFiles() {
		if before[f] {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		copies = append(copies, string(b))
	}
	testharness.CheckOutcome(t, s, d.Log()[offset:], copies)
}
