package protocol

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/staging"
)

// tenMiB is a 10 MiB message in wire form: 78-octet lines, a few of them
// dot-stuffed.
var tenMiB = func() string {
	var b strings.Builder
	b.WriteString("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("abcdefghij", 7) + "0123456\r\n"
	for i := 0; b.Len() < 10<<20; i++ {
		if i%100 == 0 {
			b.WriteString("..dot-stuffed line\r\n")
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return b.String()
}()

// BenchmarkDataPath measures the DATA phase of the engine: reading a
// 10 MiB text off a buffered stream, undoing dot transparency and line
// endings, and staging it (in memory to 1 MiB, then an unlinked file).
func BenchmarkDataPath(b *testing.B) {
	src := strings.NewReader(tenMiB)
	b.SetBytes(int64(len(tenMiB)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(tenMiB)
		r := bufio.NewReaderSize(src, 64<<10)
		buf := staging.New(b.TempDir(), 1<<20)
		res, err := readText(r, textLimits{maxMessage: 20 << 20, maxHeader: 100 << 10}, bodyOnly{buf})
		if err != nil || !res.terminated || res.tooBig {
			b.Fatalf("err %v res %+v", err, res)
		}
		rd, _ := buf.File()
		io.Copy(io.Discard, rd)
		buf.Close()
	}
}

// BenchmarkDataPathMemory is the same with everything kept in memory, to
// separate the engine's own cost from the staging file's.
func BenchmarkDataPathMemory(b *testing.B) {
	src := strings.NewReader(tenMiB)
	b.SetBytes(int64(len(tenMiB)))
	b.ReportAllocs()
	var sink recordSink
	for b.Loop() {
		src.Reset(tenMiB)
		sink.Reset()
		r := bufio.NewReaderSize(src, 64<<10)
		if _, err := readText(r, textLimits{maxMessage: 20 << 20, maxHeader: 100 << 10}, &sink); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSession measures whole sessions over loopback TCP with the fake
// backends: connect, USER, PASS, DATA with a 1 KiB message, QUIT.
func BenchmarkSession(b *testing.B) {
	ts := newBenchServer(b)
	msg := simpleMessage + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 16)
	b.ReportAllocs()
	for b.Loop() {
		ts.session(msg)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkSessionParallel runs sessions from several clients at once.
func BenchmarkSessionParallel(b *testing.B) {
	ts := newBenchServer(b)
	b.SetParallelism(4) // 4 × GOMAXPROCS clients
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ts.session(simpleMessage)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
