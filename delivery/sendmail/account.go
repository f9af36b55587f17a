package sendmail

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
)

// account is the local Unix identity one submission runs as.
type account struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups from NSS, primary included
	Home   string
}

// overflowUID is the kernel's overflow uid (nobody): files and processes
// of unmapped users show up as it, so it is never a real submitter.
const overflowUID = 65534

// lookupFunc resolves an account name; tests replace it.
type lookupFunc func(name string) (account, error)

// errNoSuchAccount is what a lookupFunc returns for a name NSS does not
// know (as opposed to NSS being unable to answer).
var errNoSuchAccount = errors.New("no such account")

// lookupNSS resolves name through the system's user and group databases
// with os/user. Built with cgo (the default on a host with a C compiler,
// and needed for PAM anyway) this goes through getpwnam_r and getgrouplist,
// i.e. NSS, so sssd and nslcd users and their groups work; the pure-Go
// fallback reads only /etc/passwd and /etc/group.
func lookupNSS(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return account{}, errNoSuchAccount
		}
		return account{}, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("account %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("account %q: gid %q: %w", name, u.Gid, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return account{}, fmt.Errorf("account %q: groups: %w", name, err)
	}
	groups := make([]uint32, 0, len(ids))
	for _, s := range ids {
		g, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return account{}, fmt.Errorf("account %q: group id %q: %w", name, s, err)
		}
		groups = append(groups, uint32(g))
	}
	return account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Groups: groups, Home: u.HomeDir}, nil
}

// lookupGroupNSS returns the gid of the group called name, and false when
// NSS does not know it.
func lookupGroupNSS(name string) (uint32, bool, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return 0, false, nil
		}
		return 0, false, err
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("group %q: gid %q: %w", name, g.Gid, err)
	}
	return uint32(gid), true, nil
}

// privilegedGIDs resolves the names of delivery.sendmail.privileged_groups
// to gids; gid 0 is always among them. A name NSS does not know is skipped
// (Red Hat systems have no shadow group).
func privilegedGIDs(names []string) (map[uint32]bool, error) {
	gids := map[uint32]bool{0: true}
	for _, name := range names {
		gid, ok, err := lookupGroupNSS(name)
		if err != nil {
			return nil, fmt.Errorf("delivery.sendmail.privileged_groups: %q: %w", name, err)
		}
		if ok {
			gids[gid] = true
		}
	}
	return gids, nil
}

// policy says why acct may not submit, or "" when it may. privileged are
// the gids no submitting account may hold (gid 0 is refused even when it is
// not among them). The reasons are stable log words.
func policy(acct account, minUID uint32, privileged map[uint32]bool) string {
	switch {
	case acct.UID == 0:
		return "uid-zero"
	case acct.UID == overflowUID:
		return "uid-overflow"
	case acct.UID < minUID:
		return "uid-below-min"
	case acct.GID == 0:
		// A uid >= min_uid whose primary group is root's would hand
		// sendmail root's group: no real user needs that.
		return "gid-zero"
	case privileged[acct.GID]:
		return "privileged-group"
	}
	for _, g := range acct.Groups {
		if g == 0 || privileged[g] {
			// The child gets the supplementary groups too (initgroups).
			return "privileged-group"
		}
	}
	return ""
}

// resolve picks the account a submission runs as: name (the envelope's
// Account) when NSS knows it, otherwise the fallback account when one is
// configured. Errors are delivery errors: a login with no usable account
// is permanent (550), NSS failing to answer is temporary (451).
func (b *Backend) resolve(name string) (account, error) {
	if name != "" {
		if !config.ValidAccountName(name) {
			return account{}, delivery.Permanent("bad-account", fmt.Errorf("account name %s is not valid", quote(name)))
		}
		acct, err := b.lookup(name)
		switch {
		case err == nil:
			return b.checkPolicy(acct)
		case !errors.Is(err, errNoSuchAccount):
			return account{}, delivery.Temporary("account-lookup", err)
		}
		// Not a local account: same as no account at all.
	}
	if b.fallback == nil {
		if name == "" {
			return account{}, delivery.Permanent("no-account", errors.New("the user has no local account and delivery.sendmail.fallback_account is not set"))
		}
		return account{}, delivery.Permanent("no-account", fmt.Errorf("account %s is not known to NSS and delivery.sendmail.fallback_account is not set", quote(name)))
	}
	return *b.fallback, nil
}

// CheckAccount applies the account policy at login, so that a user with
// no acceptable local account (uid 0, below min_uid, the overflow uid,
// a privileged group, or none at all without fallback_account) is refused at
// PASS like a wrong password, not after uploading a message. It returns
// nil, a *delivery.PermanentError with the reason, or a
// *delivery.TemporaryError when NSS cannot answer. Deliver checks again.
// An account that passed in the last recentTTL passes again without a new
// NSS lookup: a user who posts message after message (what the auth cache
// is for) is resolved once every recentTTL, not at every login.
func (b *Backend) CheckAccount(login, name string) error {
	if _, ok := b.recentAccount(name); ok {
		return nil
	}
	acct, err := b.resolve(name)
	if err == nil && name != "" && acct.Name == name {
		b.remember(acct)
	}
	return err
}

// recentTTL is how long an account CheckAccount resolved at login is used
// as it is by the delivery that follows and by the same account's next
// logins, instead of asking NSS again. An NSS lookup (the passwd entry,
// then every group; with systemd's NSS module a hundred system calls) is
// the largest part of what the privileged process spends per message; a
// login and its delivery are normally a few milliseconds apart.
const recentTTL = 5 * time.Second

// maxRecent bounds the accounts remembered; past it the old ones go.
const maxRecent = 1024

// recentAccount is an account resolved at login and when.
type recentAccount struct {
	acct account
	at   time.Time
}

// remember keeps acct, which passed the policy just now, for recentTTL.
func (b *Backend) remember(acct account) {
	b.recentMu.Lock()
	defer b.recentMu.Unlock()
	if b.recent == nil {
		b.recent = map[string]recentAccount{}
	}
	if len(b.recent) >= maxRecent {
		now := time.Now()
		for name, r := range b.recent {
			if now.Sub(r.at) >= recentTTL {
				delete(b.recent, name)
			}
		}
		if len(b.recent) >= maxRecent {
			clear(b.recent)
		}
	}
	b.recent[acct.Name] = recentAccount{acct, time.Now()}
}

// recentAccount returns the account called name if a login resolved it,
// and it passed the policy, in the last recentTTL.
func (b *Backend) recentAccount(name string) (account, bool) {
	if name == "" {
		return account{}, false
	}
	b.recentMu.Lock()
	r, ok := b.recent[name]
	b.recentMu.Unlock()
	if ok && time.Since(r.at) < recentTTL {
		return r.acct, true
	}
	return account{}, false
}

// resolveForDelivery is resolve, but takes an account resolved at login in
// the last recentTTL as it is.
func (b *Backend) resolveForDelivery(name string) (account, error) {
	if acct, ok := b.recentAccount(name); ok {
		return acct, nil
	}
	return b.resolve(name)
}

func (b *Backend) checkPolicy(acct account) (account, error) {
	if why := policy(acct, b.cfg.MinUID, b.privileged); why != "" {
		return account{}, delivery.Permanent(why, fmt.Errorf("account %s has uid %d gid %d groups %v (min_uid %d, privileged_groups %q)",
			quote(acct.Name), acct.UID, acct.GID, acct.Groups, b.cfg.MinUID, b.cfg.PrivilegedGroups))
	}
	if !b.cfg.SwitchUser && acct.UID != uint32(os.Geteuid()) {
		return account{}, delivery.Permanent("not-own-account", fmt.Errorf("switch_user = false and account %s (uid %d) is not mppd's own (uid %d)", quote(acct.Name), acct.UID, os.Geteuid()))
	}
	return acct, nil
}

// Capability bits of linux/capability.h.
const (
	capKill   = 5
	capSetGID = 6
	capSetUID = 7
)

// CheckPrivileges reports whether this process can run a child as another
// user and stop it: it runs as root, or holds CAP_SETUID, CAP_SETGID and
// CAP_KILL in its effective set (a systemd unit with
// AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL). Without CAP_KILL
// the kill of a sendmail that outlives the timeout would fail, and a hung
// child would hold its session for ever. New calls it when switch_user is
// on, so a daemon that could never deliver, or never stop a delivery,
// refuses to start instead.
func CheckPrivileges() error {
	if os.Geteuid() == 0 {
		return nil
	}
	capEff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("delivery.sendmail: cannot tell whether mppd may switch users: %w", err)
	}
	const need = 1<<capSetUID | 1<<capSetGID | 1<<capKill
	if capEff&need == need {
		return nil
	}
	return fmt.Errorf("delivery.sendmail: switch_user = true needs mppd to run as root or with CAP_SETUID, CAP_SETGID and CAP_KILL, "+
		"but it runs as uid %d without them; start it as root, give its unit AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL, "+
		"or set switch_user = false if every submission is made as mppd's own account", os.Geteuid())
}

// effectiveCaps reads CapEff of the calling thread. (Not /proc/self/status:
// that shows the main thread, which privdrop.Start may have parked with a
// reduced state.)
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/thread-self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}
