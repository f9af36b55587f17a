package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkLoadErrors loads each document of cases and checks that Load
// refuses it with an error that contains the wanted text, in which FILE
// stands for the file's path.
func checkLoadErrors(t *testing.T, cases map[string]string) {
	t.Helper()
	for doc, want := range cases {
		path := filepath.Join(t.TempDir(), "mppd.toml")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), path, "FILE"), want) {
			t.Errorf("%q: got %v, want %s", doc, err, want)
		}
	}
}
