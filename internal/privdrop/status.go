package privdrop

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Status is what /proc/PID/status says about a process's privileges.
type Status struct {
	UID, GID   [4]uint64 // real, effective, saved, filesystem
	Groups     []uint64  // supplementary groups
	CapInh     uint64
	CapPrm     uint64
	CapEff     uint64
	CapBnd     uint64
	CapAmb     uint64
	NoNewPrivs bool
}

// ReadStatus reads the status file of a process; pid 0 means the calling
// process (/proc/self/status).
func ReadStatus(pid int) (Status, error) {
	name := "/proc/self/status"
	if pid != 0 {
		name = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(string(b))
}

// ParseStatus reads the lines of a /proc/PID/status text that Status has
// fields for. Every one of them must be there: a kernel too old to show
// CapAmb or NoNewPrivs cannot be checked, so it is an error.
func ParseStatus(text string) (Status, error) {
	var st Status
	seen := map[string]bool{}
	caps := map[string]*uint64{
		"CapInh": &st.CapInh, "CapPrm": &st.CapPrm, "CapEff": &st.CapEff,
		"CapBnd": &st.CapBnd, "CapAmb": &st.CapAmb,
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			*caps[key], err = strconv.ParseUint(val, 16, 64)
		case "NoNewPrivs":
			st.NoNewPrivs = val == "1"
			if val != "0" && val != "1" {
				err = errors.New("not 0 or 1")
			}
		case "Uid":
			st.UID, err = parseIDs(val)
		case "Gid":
			st.GID, err = parseIDs(val)
		case "Groups":
			for _, f := range strings.Fields(val) {
				g, gerr := strconv.ParseUint(f, 10, 32)
				if gerr != nil {
					err = gerr
					break
				}
				st.Groups = append(st.Groups, g)
			}
		default:
			continue
		}
		if err != nil {
			return Status{}, fmt.Errorf("privdrop: status line %s: %q: %w", key, val, err)
		}
		seen[key] = true
	}
	for _, key := range []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"} {
		if !seen[key] {
			return Status{}, fmt.Errorf("privdrop: status has no %s line", key)
		}
	}
	return st, nil
}

func parseIDs(val string) ([4]uint64, error) {
	var ids [4]uint64
	f := strings.Fields(val)
	if len(f) != 4 {
		return ids, errors.New("want four ids")
	}
	for i := range f {
		id, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil {
			return ids, err
		}
		ids[i] = id
	}
	return ids, nil
}

// Expect is what CheckStatus requires besides empty capability sets.
type Expect struct {
	UID, GID int  // every uid and gid must be these
	NoGroups bool // no supplementary group other than GID
	Bounding bool // the bounding set must be empty too
}

// CheckStatus reports, as one error naming every problem, how st differs
// from a process that holds nothing: permitted, effective, inheritable and
// ambient sets empty (and the bounding set when want.Bounding), no_new_privs
// set, every uid and gid as wanted, and (when want.NoGroups) no
// supplementary group other than the primary one.
func CheckStatus(st Status, want Expect) error {
	var probs []string
	for _, c := range []struct {
		name string
		v    uint64
		must bool
	}{
		{"CapPrm", st.CapPrm, true}, {"CapEff", st.CapEff, true},
		{"CapInh", st.CapInh, true}, {"CapAmb", st.CapAmb, true},
		{"CapBnd", st.CapBnd, want.Bounding},
	} {
		if c.must && c.v != 0 {
			probs = append(probs, fmt.Sprintf("%s is %016x", c.name, c.v))
		}
	}
	if !st.NoNewPrivs {
		probs = append(probs, "NoNewPrivs is 0")
	}
	for i, id := range st.UID {
		if id != uint64(want.UID) {
			probs = append(probs, fmt.Sprintf("uid %d is %d, want %d", i, id, want.UID))
		}
	}
	for i, id := range st.GID {
		if id != uint64(want.GID) {
			probs = append(probs, fmt.Sprintf("gid %d is %d, want %d", i, id, want.GID))
		}
	}
	for _, g := range st.Groups {
		if want.NoGroups && g != uint64(want.GID) {
			probs = append(probs, fmt.Sprintf("supplementary group %d", g))
		}
	}
	if len(probs) > 0 {
		return errors.New("privdrop: the process is not unprivileged: " + strings.Join(probs, ", "))
	}
	return nil
}

// SelfCheck reads /proc/self/status and checks it with CheckStatus.
func SelfCheck(want Expect) error {
	st, err := ReadStatus(0)
	if err != nil {
		return err
	}
	return CheckStatus(st, want)
}
