package sendmail

import (
	"path/filepath"
	"testing"
)

func TestReadOnlySpoolWritableOrMissing(t *testing.T) {
	dir := t.TempDir()
	if got := readOnlySpool([]string{filepath.Join(dir, "missing"), dir}); got != "" {
		t.Fatalf("readOnlySpool = %q, want \"\" for a missing and a writable directory", got)
	}
}
