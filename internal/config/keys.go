package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mppd/mppd/internal/tomltype"
)

// keyLines maps every key and table header in a TOML document ("listen",
// "session.max_line", "authn.passwdfile") to the line it is on, so that
// errors found after decoding (a value out of range, a regexp that does not
// compile) can name the line too. It also refuses, with a line, a duration
// written as a bare number, which the decoder would report without one.
// Syntax errors are left to the decoder, which reports them with a line.
func keyLines(path string, data []byte) (map[string]int, error) {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var prefix []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			prefix = keyOf(e)
			if len(prefix) > 0 {
				lines[strings.Join(prefix, ".")] = line(&p, e)
			}
		case unstable.KeyValue:
			full := append(append([]string(nil), prefix...), keyOf(e)...)
			name := strings.Join(full, ".")
			lines[name] = line(&p, e)
			if durationKeys[name] && e.Value().Kind != unstable.String {
				return nil, fmt.Errorf("%s:%d: %s: a duration must be a quoted string with a unit, like \"30s\" or \"5m\"",
					path, lines[name], name)
			}
		}
	}
	return lines, nil
}

// keyOf returns the parts of a table header's or key-value's key.
func keyOf(e *unstable.Node) []string {
	var parts []string
	it := e.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// line returns the 1-based line of an expression's first key part.
func line(p *unstable.Parser, e *unstable.Node) int {
	it := e.Key()
	if !it.Next() {
		return 0
	}
	return p.Shape(it.Node().Raw).Start.Line
}

// durationKeys are the dotted keys of every duration field in Config,
// found by reflection so that a new one needs no list: tomltype.Duration,
// which every backend's Config uses too, and time.Duration (which go-toml
// would otherwise fill from a bare integer as nanoseconds; a backend
// should use tomltype.Duration instead).
var durationKeys = func() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			switch {
			case f.Type == reflect.TypeFor[tomltype.Duration]() || f.Type == reflect.TypeFor[time.Duration]():
				keys[prefix+tag] = true
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, prefix+tag+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}()

// Keys lists every setting of the configuration file as a dotted key
// ("session.idle_timeout"), sorted. Tests use it to check that the
// packaged file and mppd.conf(5) document each one.
func Keys() ([]string, error) {
	b, err := toml.Marshal(Default())
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			keys = append(keys, prefix+k)
		}
	}
	walk("", m)
	sort.Strings(keys)
	return keys, nil
}
