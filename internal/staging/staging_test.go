package staging

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

func TestBufferStaysInMemoryBelowThreshold(t *testing.T) {
	s := New(t.TempDir(), 16)
	defer s.Close()
	s.Write([]byte("hello "))
	s.Write([]byte("world"))
	if s.Spilled() {
		t.Fatal("spilled below the threshold")
	}
	r, err := s.Reader()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if string(got) != "hello world" || s.Size() != 11 {
		t.Fatalf("got %q size %d", got, s.Size())
	}
}

func TestBufferSpillsToUnlinkedFile(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 8)
	want := bytes.Repeat([]byte("0123456789"), 10_000)
	for i := 0; i < len(want); i += 7 {
		s.Write(want[i:min(i+7, len(want))])
	}
	if !s.Spilled() {
		t.Fatal("did not spill past the threshold")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("the staging file is visible in the directory: %v", entries)
	}
	r, err := s.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*os.File); !ok {
		t.Fatalf("reader is %T, want *os.File", r)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBufferKeepsFirstError(t *testing.T) {
	s := New("/nonexistent-mppd-dir", 4)
	if _, err := s.Write([]byte("too long for memory")); err == nil {
		t.Fatal("spill into a missing directory succeeded")
	}
	if _, err := s.Write([]byte("x")); err == nil || s.Err() == nil {
		t.Fatal("a later write hid the first error")
	}
	if _, err := s.Reader(); err == nil {
		t.Fatal("Reader succeeded after a failed write")
	}
}

func TestCheckFree(t *testing.T) {
	if err := CheckFree(t.TempDir(), 1); err != nil {
		t.Fatalf("1 byte: %v", err)
	}
	if err := CheckFree(t.TempDir(), 1<<62); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("an impossible amount: %v", err)
	}
	if err := CheckFree("/nonexistent-mppd-dir", 1); err == nil || errors.Is(err, ErrLowSpace) {
		t.Fatalf("missing dir: %v", err)
	}
}
