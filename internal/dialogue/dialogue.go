// Package dialogue reads the scripted MPP dialogues of the hostile-input
// catalogue (*.dlg files): exact bytes a client sends and the replies it
// must get. protocol's tests play every one against the engine in-process
// (protocol/testdata/dialogues holds those the engine alone answers); the
// adversarial suite plays the ones that need the daemon's backends, log
// handler or config defaults (test/adversarial/testdata) against the built
// mppd over TCP. protocol's FuzzSession uses the client's bytes as its
// seed corpus.
//
// A script is a text file, one directive per line:
//
//	# comment (the first ones describe the case)
//	c: TEXT          the client sends TEXT and CRLF ("c:" alone: CRLF)
//	c! "QUOTED"      the client sends the Go-quoted bytes exactly
//	c* N "QUOTED"    the client sends the bytes N times (floods)
//	s: NNN [TEXT]    the next reply has code NNN (and starts with TEXT)
//	s* N NNN         the next N replies have code NNN
//	s: close         the server has closed the connection
//	config: TOML     one line added to the daemon's config
//	deliveries: N    the dialogue delivers N copies (default 0)
//	delivered-has: TEXT    every copy delivered contains TEXT (Go-quoted
//	                       when it starts with a double quote)
//	delivered-lacks: TEXT  no copy delivered contains TEXT
//	log: TEXT        the daemon's log shows TEXT during the dialogue
//	nolog: TEXT      ... and never shows TEXT
//
// The daemon's 220 greeting is read before the first step.
package dialogue

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kind is what a step does.
type Kind int

const (
	Send   Kind = iota + 1 // the client sends Data
	Expect                 // a reply with Code (and Text as its prefix)
	Closed                 // the server closes the connection
)

// Step is one line of a dialogue.
type Step struct {
	Kind Kind
	Data []byte // Send
	Code int    // Expect
	Text string // Expect: the reply text starts with it
	Line int    // where in the file
}

// Script is one dialogue.
type Script struct {
	Name       string   // the file name without .dlg
	About      string   // the leading comment lines
	Config     []string // TOML lines for the daemon
	Steps      []Step
	Deliveries int
	Has, Lacks []string // delivered-has, delivered-lacks
	Logs       []string
	NoLogs     []string
}

// ClientBytes is everything the client sends, in order, with each repeated
// block cut to at most maxRepeat octets (0: no cut), for fuzz seeds.
func (s *Script) ClientBytes(maxRepeat int) []byte {
	var b bytes.Buffer
	for _, st := range s.Steps {
		if st.Kind != Send {
			continue
		}
		d := st.Data
		if maxRepeat > 0 && len(d) > maxRepeat {
			d = d[:maxRepeat]
		}
		b.Write(d)
	}
	return b.Bytes()
}

// Load reads every *.dlg file in dir, sorted by name.
func Load(dir string) ([]*Script, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.dlg"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Script
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		s, err := Parse(strings.TrimSuffix(filepath.Base(n), ".dlg"), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no *.dlg files in %s", dir)
	}
	return out, nil
}

// maxSend bounds one c* directive, so a typo cannot ask for gigabytes.
const maxSend = 64 << 20

// Parse reads one script.
func Parse(name string, data []byte) (*Script, error) {
	s := &Script{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	leading := true
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			leading = false
			continue
		}
		if strings.HasPrefix(line, "#") {
			if leading {
				s.About += strings.TrimSpace(strings.TrimPrefix(line, "#")) + "\n"
			}
			continue
		}
		leading = false
		if line == "c:" {
			s.Steps = append(s.Steps, Step{Kind: Send, Data: []byte("\r\n"), Line: n})
			continue
		}
		key, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("line %d: %q has no argument", n, line)
		}
		switch key {
		case "c:":
			s.Steps = append(s.Steps, Step{Kind: Send, Data: []byte(rest + "\r\n"), Line: n})
		case "c!":
			b, err := strconv.Unquote(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, rest, err)
			}
			s.Steps = append(s.Steps, Step{Kind: Send, Data: []byte(b), Line: n})
		case "c*":
			count, q, _ := strings.Cut(rest, " ")
			k, err := strconv.Atoi(count)
			if err != nil || k < 1 {
				return nil, fmt.Errorf("line %d: bad count %q", n, count)
			}
			b, err := strconv.Unquote(q)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %v", n, q, err)
			}
			if k*len(b) > maxSend {
				return nil, fmt.Errorf("line %d: more than %d octets", n, maxSend)
			}
			s.Steps = append(s.Steps, Step{Kind: Send, Data: bytes.Repeat([]byte(b), k), Line: n})
		case "s:":
			if rest == "close" {
				s.Steps = append(s.Steps, Step{Kind: Closed, Line: n})
				continue
			}
			code, text, _ := strings.Cut(rest, " ")
			c, err := strconv.Atoi(code)
			if err != nil || c < 100 || c > 599 {
				return nil, fmt.Errorf("line %d: bad reply code %q", n, code)
			}
			s.Steps = append(s.Steps, Step{Kind: Expect, Code: c, Text: text, Line: n})
		case "s*":
			count, code, _ := strings.Cut(rest, " ")
			k, err := strconv.Atoi(count)
			c, err2 := strconv.Atoi(code)
			if err != nil || err2 != nil || k < 1 || k > 1_000_000 || c < 100 || c > 599 {
				return nil, fmt.Errorf("line %d: bad s* %q", n, rest)
			}
			for i := 0; i < k; i++ {
				s.Steps = append(s.Steps, Step{Kind: Expect, Code: c, Line: n})
			}
		case "delivered-has:", "delivered-lacks:":
			if strings.HasPrefix(rest, `"`) {
				u, err := strconv.Unquote(rest)
				if err != nil {
					return nil, fmt.Errorf("line %d: %s: %v", n, rest, err)
				}
				rest = u
			}
			if key == "delivered-has:" {
				s.Has = append(s.Has, rest)
			} else {
				s.Lacks = append(s.Lacks, rest)
			}
		case "nolog:":
			s.NoLogs = append(s.NoLogs, rest)
		case "config:":
			s.Config = append(s.Config, rest)
		case "deliveries:":
			d, err := strconv.Atoi(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad count %q", n, rest)
			}
			s.Deliveries = d
		case "log:":
			s.Logs = append(s.Logs, rest)
		default:
			return nil, fmt.Errorf("line %d: unknown directive %q", n, key)
		}
	}
	return s, sc.Err()
}
