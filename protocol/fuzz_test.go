package protocol

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzParseCommand: parsing never panics, the verb never holds a space or a
// control byte, and verb and argument put back together give the line.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER alice", "PASS  two  spaces ", "DATA", "data x", "USER\talice", "NOOP\x00", "", " ", "QUIT\r", "\x16\x03\x01", "GET / HTTP/1.1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd := parseCommand(line)
		if strings.ContainsAny(cmd.verb, " ") || hasControl(cmd.verb) {
			t.Fatalf("verb %q", cmd.verb)
		}
		if cmd.hasArg && cmd.badSeparator {
			t.Fatal("both a space and a bad separator")
		}
		n := len(cmd.verb)
		sep := ""
		if cmd.hasArg {
			sep = " "
		}
		if !strings.EqualFold(string(line[:n]), cmd.verb) || string(line[n:]) != sep+cmd.arg {
			t.Fatalf("%q split into %q %q", line, cmd.verb, cmd.arg)
		}
	})
}

// stuff is what a correct client does to a message: CRLF line endings,
// a dot before every line that starts with one, and the terminator.
func stuff(msg string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(msg, "\n") {
		if l == "" {
			continue
		}
		if l[0] == '.' {
			b.WriteByte('.')
		}
		b.WriteString(strings.TrimSuffix(l, "\n"))
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

// FuzzReadText: for any message without CR or NUL, what a correct client
// sends is read back byte for byte (dot transparency and line endings
// undone), the terminator is found, and the trailer after it is left
// unread. For arbitrary bytes, readText never panics and never reports
// more than it read.
func FuzzReadText(f *testing.F) {
	for _, s := range []string{
		"Subject: x\n\nbody\n", ".\n..\n...\n", "a\n.\nb\n", "no newline at end", "\n", "",
		"From: a@b\n\n.hidden\n", strings.Repeat("x", 70_000) + "\n.\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		lim := textLimits{maxMessage: 1 << 30, maxHeader: 1 << 30}

		// Any bytes at all: no panic, and the reader stays within them.
		var sink recordSink
		readText(bufio.NewReaderSize(bytes.NewReader(raw), 16), lim, &sink)

		msg := string(raw)
		if strings.ContainsAny(msg, "\r\x00") {
			return
		}
		if msg != "" && !strings.HasSuffix(msg, "\n") {
			msg += "\n"
		}
		wire := stuff(msg) + "NEXT\r\n"
		r := bufio.NewReaderSize(strings.NewReader(wire), 16)
		var body recordSink
		res, err := readText(r, lim, &body)
		if err != nil || !res.terminated {
			t.Fatalf("%q: err %v terminated %v", wire, err, res.terminated)
		}
		if res.bareLFDot || res.bareCR || res.nul || res.tooBig {
			t.Fatalf("%q: flags %+v", wire, res)
		}
		if got := string(res.header) + body.String(); got != msg {
			t.Fatalf("round trip of %q gave %q", msg, got)
		}
		if res.size != int64(len(msg)) {
			t.Fatalf("size %d, want %d", res.size, len(msg))
		}
		rest, _ := r.ReadString('\n')
		if rest != "NEXT\r\n" {
			t.Fatalf("read past the terminator: left %q", rest)
		}
	})
}
