package mppclient

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/mppclient/mpptest"
)

// textCases is the conversion table: a local file's bytes → the bytes on
// the wire after DATA, terminator included (RFC 1204 §2.3 DATA, RFC 821
// §4.5.2).
var textCases = []struct {
	name, in, wire string
}{
	{"empty message", "", ".\r\n"},
	{"LF line", "a\n", "a\r\n.\r\n"},
	{"CRLF line", "a\r\n", "a\r\n.\r\n"},
	{"last line without newline", "a", "a\r\n.\r\n"},
	{"LF file", "From: a\nTo: b\n\nbody\n", "From: a\r\nTo: b\r\n\r\nbody\r\n.\r\n"},
	{"CRLF file", "From: a\r\nTo: b\r\n\r\nbody\r\n", "From: a\r\nTo: b\r\n\r\nbody\r\n.\r\n"},
	{"mixed line ends", "a\r\nb\nc", "a\r\nb\r\nc\r\n.\r\n"},
	{"empty lines", "\n\n", "\r\n\r\n.\r\n"},
	{"line that is only a dot", "a\n.\nb\n", "a\r\n..\r\nb\r\n.\r\n"},
	{"CRLF line that is only a dot", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
	{"first line only a dot", ".\n", "..\r\n.\r\n"},
	{"whole message is a dot", ".", "..\r\n.\r\n"},
	{"last line a dot without newline", "a\n.", "a\r\n..\r\n.\r\n"},
	{"line starting with a dot", ".hidden\n", "..hidden\r\n.\r\n"},
	{"line starting with two dots", "..x\n", "...x\r\n.\r\n"},
	{"line of three dots", "...\n", "....\r\n.\r\n"},
	{"dot not at line start", "a.\n .\nx.y\n", "a.\r\n .\r\nx.y\r\n.\r\n"},
	{"text contains CRLF.CRLF", "a\r\n.\r\n", "a\r\n..\r\n.\r\n"},
	{"bare CR is content", "a\rb\n", "a\rb\r\n.\r\n"},
	{"bare CR before CRLF", "a\r\r\n", "a\r\r\n.\r\n"},
	{"dot after bare CR is not at line start", "a\r.\n", "a\r.\r\n.\r\n"},
	{"trailing CR completes the line", "a\r", "a\r\n.\r\n"},
	{"dot and trailing CR", ".\r", "..\r\n.\r\n"},
	{"NUL passes through", "a\x00b\n", "a\x00b\r\n.\r\n"},
}

func convert(t *testing.T, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 16)
	tw := newTextWriter(bw)
	for _, c := range chunks {
		n, err := tw.Write([]byte(c))
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestTextConversion(t *testing.T) {
	for _, tc := range textCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := convert(t, tc.in); got != tc.wire {
				t.Errorf("in %q:\n got %q\nwant %q", tc.in, got, tc.wire)
			}
		})
	}
}

// The result must not depend on how the input is cut into writes: a CRLF,
// or a dot at the start of a line, may straddle two reads of a file.
func TestTextConversionAnySplit(t *testing.T) {
	for _, tc := range textCases {
		for i := 0; i <= len(tc.in); i++ {
			if got := convert(t, tc.in[:i], tc.in[i:]); got != tc.wire {
				t.Errorf("%s split at %d: got %q, want %q", tc.name, i, got, tc.wire)
			}
		}
		bytewise := strings.Split(tc.in, "")
		if got := convert(t, bytewise...); got != tc.wire {
			t.Errorf("%s byte by byte: got %q, want %q", tc.name, got, tc.wire)
		}
	}
}

// FuzzTextConversion checks the properties that make the conversion safe
// for any input: exactly one terminator, at the very end; no bare LF on the
// wire; and undoing the stuffing gives back the input with its line ends
// normalised to LF.
func FuzzTextConversion(f *testing.F) {
	for _, tc := range textCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		wire := convert(t, in)
		end := strings.Index(wire, "\r\n.\r\n")
		if wire == ".\r\n" {
			if in != "" {
				t.Fatalf("only a terminator for input %q", in)
			}
			return
		}
		if strings.HasPrefix(wire, ".\r\n") || end != len(wire)-5 {
			t.Fatalf("terminator not only at the end: %q → %q", in, wire)
		}
		for i := 0; i < len(wire); i++ {
			if wire[i] == '\n' && (i == 0 || wire[i-1] != '\r') {
				t.Fatalf("bare LF at %d: %q → %q", i, in, wire)
			}
		}
		want := strings.ReplaceAll(in, "\r\n", "\n")
		if strings.HasSuffix(want, "\r") {
			want = want[:len(want)-1] + "\n"
		} else if !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if got := string(mpptest.Unstuff([]byte(wire[:len(wire)-3]))); got != want {
			t.Fatalf("round trip of %q:\n got %q\nwant %q", in, got, want)
		}
	})
}

func BenchmarkTextConversion(b *testing.B) {
	line := strings.Repeat("x", 70) + "\n"
	msg := []byte(strings.Repeat(line+"."+line, 1<<13)) // ~1.1 MiB, half the lines stuffed
	bw := bufio.NewWriterSize(discard{}, 32*1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		tw := newTextWriter(bw)
		tw.Write(msg)
		tw.Close()
		bw.Flush()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
