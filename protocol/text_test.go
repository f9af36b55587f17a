package protocol

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadTextSplitLines feeds readText through a 16-octet bufio.Reader
// (the smallest there is), so that every line longer than 15 octets reaches
// it in pieces, as lines longer than the session's 64 KiB buffer do: a CR
// at the end of one piece with its LF in the next, a dot at the start of a
// continuation piece, a terminator right after a split line. A piece is
// always the next 16 octets of the line, whatever the underlying reader
// returns per call; each case runs with whole, one-byte and half reads to
// be sure.
func TestReadTextSplitLines(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	const hdr = "To: a@b.test\r\n\r\n" // a header block of short lines
	const hdrLF = "To: a@b.test\n\n"
	tests := []struct {
		name   string
		wire   string // after 354, up to and including the terminator
		header string // want, LF endings
		body   string
		flags  textResult // only the flag fields are compared
	}{{
		name:   "CRLF split between pieces, terminator next",
		wire:   hdr + x(15) + "\r\n.\r\n", // piece 1: 15 x and the CR
		header: hdrLF,
		body:   x(15) + "\n",
	}, {
		name:   "CRLF split twice in a row",
		wire:   hdr + x(31) + "\r\n" + x(15) + "\r\n.\r\n",
		header: hdrLF,
		body:   x(31) + "\n" + x(15) + "\n",
	}, {
		name:   "dot at the start of a continuation piece is content",
		wire:   hdr + x(16) + ".foo\r\n.\r\n",
		header: hdrLF,
		body:   x(16) + ".foo\n",
	}, {
		name:   "continuation piece that is exactly a dot line does not end the text",
		wire:   hdr + x(16) + ".\r\nafter\r\n.\r\n",
		header: hdrLF,
		body:   x(16) + ".\nafter\n",
	}, {
		name:   "continuation piece of a dot and a bare LF is content too",
		wire:   hdr + x(16) + ".\nafter\r\n.\r\n",
		header: hdrLF,
		body:   x(16) + ".\nafter\n",
	}, {
		name:   "long dot-stuffed line loses one dot only",
		wire:   hdr + ".." + x(20) + "\r\n.\r\n",
		header: hdrLF,
		body:   "." + x(20) + "\n",
	}, {
		name:   "bare CR at the end of a piece, then a dot line",
		wire:   hdr + x(15) + "\r.\r\nmore\r\n.\r\n",
		header: hdrLF,
		body:   x(15) + "\r.\nmore\n",
		flags:  textResult{bareCR: true},
	}, {
		name:   "bare CR at the end of a piece, then text",
		wire:   hdr + x(15) + "\ry\r\n.\r\n",
		header: hdrLF,
		body:   x(15) + "\ry\n",
		flags:  textResult{bareCR: true},
	}, {
		name:   "split line ending in a bare LF, then a dot line",
		wire:   hdr + x(20) + "\n.\r\n.\r\n",
		header: hdrLF,
		body:   x(20) + "\n\n",
		flags:  textResult{bareLFDot: true},
	}, {
		name:   "CR of the last header line split from its LF",
		wire:   "Subject: " + x(6) + "\r\n\r\nbody\r\n.\r\n", // "Subject: xxxxxx\r" is 16
		header: "Subject: " + x(6) + "\n\n",
		body:   "body\n",
	}, {
		name:   "header line whose last piece is only its line ending is no blank line",
		wire:   "X-Long: " + x(8) + "\r\nTo: a@b.test\r\n\r\nbody\r\n.\r\n", // "X-Long: xxxxxxxx" is 16
		header: "X-Long: " + x(8) + "\nTo: a@b.test\n\n",
		body:   "body\n",
	}, {
		name:   "same with a bare LF",
		wire:   "X-Long: " + x(8) + "\nTo: a@b.test\r\n\r\nbody\r\n.\r\n",
		header: "X-Long: " + x(8) + "\nTo: a@b.test\n\n",
		body:   "body\n",
	}, {
		name:   "terminator right after a line of exactly one piece",
		wire:   hdr + x(14) + "\r\n.\r\n", // 16 octets with its CRLF: one whole piece
		header: hdrLF,
		body:   x(14) + "\n",
	}}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
	}
	for _, tc := range tests {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				const trailer = "NEXT\r\n"
				r := bufio.NewReaderSize(wrap(strings.NewReader(tc.wire+trailer)), 16)
				if r.Size() != 16 {
					t.Fatalf("bufio buffer is %d octets, the test needs 16", r.Size())
				}
				var body recordSink
				res, err := readText(r, textLimits{maxMessage: 1 << 20, maxHeader: 1 << 20}, &body)
				if err != nil || !res.terminated {
					t.Fatalf("err %v, terminated %v", err, res.terminated)
				}
				if string(res.header) != tc.header || body.String() != tc.body {
					t.Fatalf("header %q body %q, want %q %q", res.header, body.String(), tc.header, tc.body)
				}
				if body.lateHeader {
					t.Fatal("Header came after body bytes")
				}
				if strings.HasSuffix(tc.header, "\n\n") && string(body.header) != tc.header {
					t.Fatalf("Header got %q, want %q", body.header, tc.header)
				}
				if res.size != int64(len(tc.header)+len(tc.body)) {
					t.Errorf("size %d, want %d", res.size, len(tc.header)+len(tc.body))
				}
				if res.bareCR != tc.flags.bareCR || res.bareLFDot != tc.flags.bareLFDot || res.nul || res.tooBig || res.headerBig {
					t.Errorf("flags %+v, want bareCR=%v bareLFDot=%v and no other", res, tc.flags.bareCR, tc.flags.bareLFDot)
				}
				if rest, _ := io.ReadAll(r); string(rest) != trailer {
					t.Errorf("left after the terminator %q, want %q", rest, trailer)
				}
			})
		}
	}
}

// TestReadTextSplitLimits: the pieces of a split line count
// towards the message and header limits like whole lines do.
func TestReadTextSplitLimits(t *testing.T) {
	long := strings.Repeat("y", 100)
	for _, tc := range []struct {
		name string
		lim  textLimits
		want func(textResult) bool
	}{
		{"message", textLimits{maxMessage: 50, maxHeader: 1 << 20}, func(r textResult) bool { return r.tooBig }},
		{"header", textLimits{maxMessage: 1 << 20, maxHeader: 50}, func(r textResult) bool { return r.headerBig }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := "X-Long: " + long + "\r\nTo: a@b.test\r\n\r\nbody\r\n.\r\nNEXT\r\n"
			r := bufio.NewReaderSize(strings.NewReader(wire), 16)
			res, err := readText(r, tc.lim, bodyOnly{io.Discard})
			if err != nil || !res.terminated || !tc.want(res) {
				t.Fatalf("err %v, result %+v", err, res)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "NEXT\r\n" {
				t.Fatalf("left %q", rest)
			}
		})
	}
}

// bodyOnly is a textSink that ignores the header.
type bodyOnly struct{ io.Writer }

func (bodyOnly) Header([]byte) {}

// recordSink is a textSink that keeps what it gets and notes a header that
// came after body bytes.
type recordSink struct {
	bytes.Buffer
	header     []byte
	lateHeader bool
}

func (r *recordSink) Header(h []byte) {
	r.header = append([]byte(nil), h...)
	r.lateHeader = r.Len() > 0
}
