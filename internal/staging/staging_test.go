package staging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBufferStaysInMemoryBelowThreshold(t *testing.T) {
	s := New(t.TempDir(), 16)
	defer s.Close()
	s.Write([]byte("hello "))
	s.Write([]byte("world"))
	if s.Spilled() {
		t.Fatal("spilled below the threshold")
	}
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	if string(got) != "hello world" || s.Size() != 11 {
		t.Fatalf("got %q size %d", got, s.Size())
	}
}

// The file a message ends up in is the one it spilled into: File makes no
// second copy, and the file has no name in the staging directory.
func TestFileIsTheSpillFile(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 4)
	defer s.Close()
	s.Write([]byte("more than four bytes"))
	spill := s.file
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	if f != spill {
		t.Fatal("File made a new file for a message that had spilled")
	}
	assertUnlinkedIn(t, f, dir)
	got, _ := io.ReadAll(f)
	if string(got) != "more than four bytes" {
		t.Fatalf("got %q", got)
	}
}

// A message kept in memory is written to a file in the staging directory,
// never in the system's temporary directory.
func TestFileInStagingDirNotTempDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", "/nonexistent-mppd-tmpdir")
	s := New(dir, 1<<20)
	defer s.Close()
	s.Write([]byte("small"))
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	assertUnlinkedIn(t, f, dir)
	again, err := s.File()
	if err != nil || again != f {
		t.Fatalf("a second File call gave %v, %v", again, err)
	}
	if _, err := s.Write([]byte("more")); err == nil {
		t.Fatal("a write after File succeeded")
	}
}

// assertUnlinkedIn checks that f is a regular file with no links, created
// in dir, and that dir shows no entries.
func assertUnlinkedIn(t *testing.T, f *os.File, dir string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 0 {
		t.Fatalf("mode %o links %d, want a regular file with no links", st.Mode, st.Nlink)
	}
	var dst unix.Stat_t
	if err := unix.Stat(dir, &dst); err != nil {
		t.Fatal(err)
	}
	if st.Dev != dst.Dev {
		t.Fatal("the file is not on the staging directory's file system")
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, dir+"/") {
		t.Fatalf("the file is %q, not in %s", link, dir)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the staging directory shows %v", entries)
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
	r, err := s.File()
	if err != nil {
		t.Fatal(err)
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
	if _, err := s.File(); err == nil {
		t.Fatal("File succeeded after a failed write")
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
