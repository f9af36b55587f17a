package message

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSourceReader(t *testing.T) {
	r := &SourceReader{R: strings.NewReader("Subject: x\r\n\r\nbody\r\n")}
	if _, err := io.Copy(io.Discard, r); err != nil || r.Err != nil {
		t.Fatalf("a source read to its end: copy %v, Err %v; want both nil (io.EOF is no error)", err, r.Err)
	}

	first, second := errors.New("first"), errors.New("second")
	r = &SourceReader{R: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(first))}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, first) || r.Err != first {
		t.Fatalf("failing source: copy %v, Err %v; want %v for both", err, r.Err, first)
	}
	r.R = iotest.ErrReader(second)
	r.Read(make([]byte, 8))
	if r.Err != first {
		t.Fatalf("after a second failure Err is %v, want the first, %v", r.Err, first)
	}
}
