package packaging

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/config"
)

// TestManPageDocumentsEveryKey checks that mppd.conf(5), which the packages
// install, has an entry for every setting of the configuration file.
//
// The page names a key as ".It Ic [table] name" or, inside a part that
// starts with the comment ".\" [table]", as ".It Ic name"; a key outside
// any table is ".It Ic name" before the first such comment of its section.
// One entry may name several keys: ".It Ic [table] a , Ic b".
func TestManPageDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../man/mppd.conf.5")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	table := ""
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, ".Sh ") || strings.HasPrefix(line, ".Ss "):
			table = ""
		case strings.HasPrefix(line, `.\" [`):
			table = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), `.\" [`), "]")
		case strings.HasPrefix(line, ".It Ic "):
			// ".It Ic [t] a , Ic b No ..." names t.a and t.b.
			prefix := table
			for _, part := range strings.Split(line, " Ic ")[1:] {
				f := strings.Fields(part)
				if len(f) == 0 {
					continue
				}
				name := f[0]
				if strings.HasPrefix(name, "[") && len(f) > 1 {
					prefix, name = strings.Trim(name, "[]"), f[1]
				}
				if prefix != "" {
					name = prefix + "." + name
				}
				documented[name] = true
			}
		}
	}
	var missing []string
	for _, key := range leafKeys(t) {
		if !documented[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("man/mppd.conf.5 has no entry for: %s", strings.Join(missing, ", "))
	}
}

// leafKeys is config.Keys, with enough of them to be sure it worked.
func leafKeys(t *testing.T) []string {
	keys, err := config.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 20 {
		t.Fatalf("only %d settings found: %v", len(keys), keys)
	}
	return keys
}
