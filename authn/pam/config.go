// Package pam checks passwords through the host's PAM stack (Linux-PAM),
// so that mppd accepts exactly the logins the administrator's policy in
// /etc/pam.d/<service> accepts: pam_unix and /etc/shadow, SSSD, Kerberos,
// pam_faillock, pam_access, and so on.
//
// Each login is one PAM transaction on the service named in the config:
// pam_start with the user name, PAM_RHOST set to the client's address,
// pam_authenticate with PAM_DISALLOW_NULL_AUTHTOK, pam_acct_mgmt (an expired,
// locked or refused account does not log in), and always pam_end. The user
// PAM settled on (PAM_USER, which a module may have rewritten) is the local
// account; its only address is <PAM_USER>@<mail_domain>.
//
// PAM is C code that blocks (pam_unix sleeps about two seconds after a
// failure, network modules wait for their servers) and is not promised to be
// thread-safe. Transactions therefore run on a bounded pool of workers, each
// locked to its own OS thread from pam_start to pam_end; see Backend.
//
// The cgo part builds only with the build tag "pam" (it needs libpam's
// headers, Debian package libpam0g-dev). Without the tag, New returns an
// error saying so; the configuration types below exist either way, so the
// daemon's config file can always be parsed and checked.
package pam

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/tomltype"
)

// Config is the [authn.pam] table of mppd.toml.
type Config struct {
	// Service is the PAM service name: the policy is /etc/pam.d/<Service>.
	Service string `toml:"service"`
	// MailDomain makes the address of a PAM user: <PAM_USER>@<MailDomain>.
	// Required: PAM knows accounts, not mail addresses.
	MailDomain string `toml:"mail_domain"`
	// Timeout bounds one transaction, pam_start to pam_end. A transaction
	// that takes longer is answered "unavailable" (451) at once; its worker
	// stays busy until PAM returns, because a C call cannot be interrupted.
	Timeout Duration `toml:"timeout"`
	// Workers is how many PAM transactions may run at once, each on its own
	// OS thread.
	Workers int `toml:"workers"`
	// QueueTimeout is how long a login waits for a free worker before it is
	// answered "unavailable" (451). Zero means do not wait at all.
	QueueTimeout Duration `toml:"queue_timeout"`
}

// Defaults. Why these numbers:
//
//   - Timeout 10s: a failed pam_unix login takes about 2 s (its fail delay,
//     randomised by libpam), a network module (SSSD, Kerberos,
//     RADIUS) may wait several seconds for a server; 10 s covers those
//     without letting a hung module keep a client waiting for long.
//   - Workers 16: each transaction holds an OS thread, and when mppd runs as
//     root pam_unix computes the password hash in that thread. A yescrypt
//     hash (Debian's default) takes about 16 MiB and 100 ms of CPU: 50
//     concurrent pam_unix logins on 16 workers peaked at 244 MB RSS, so 64
//     workers (the team notes' first guess) would allow about 1 GB, for no
//     gain in throughput once the CPUs are busy. Failed logins mostly sleep
//     (pam_unix's ~2 s fail delay) and cost only a thread, so 16 workers
//     still absorb about 8 failures a second before logins queue; a site
//     with many concurrent logins or a network-backed stack (SSSD,
//     Kerberos) that waits rather than computes can raise it. Any value
//     bounds the threads far below the Go runtime's 10,000-thread limit,
//     the crash the pool exists to prevent.
//   - QueueTimeout 5s: long enough to ride out a burst, short enough that a
//     saturated PAM stack answers 451 well before a client gives up.
const (
	DefaultService      = "mppd"
	DefaultTimeout      = 10 * time.Second
	DefaultWorkers      = 16
	DefaultQueueTimeout = 5 * time.Second

	// MaxWorkers caps Workers: every worker may hold an OS thread, and the
	// Go runtime aborts the whole process past 10,000 threads.
	MaxWorkers = 1024
)

// DefaultConfig returns the built-in [authn.pam] settings. MailDomain is
// empty: the daemon's configuration fills it with its host name when the
// file leaves it out, and Validate requires it.
func DefaultConfig() Config {
	return Config{
		Service:      DefaultService,
		Timeout:      Duration(DefaultTimeout),
		Workers:      DefaultWorkers,
		QueueTimeout: Duration(DefaultQueueTimeout),
	}
}

// serviceRE is what a service name may look like. libpam opens
// /etc/pam.d/<service> by name, so a slash or ".." would reach another
// directory; no real service needs more than these characters.
var serviceRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$`)

// Validate checks c, naming the key at fault.
func (c Config) Validate() error {
	var errs []string
	switch {
	case c.Service == "":
		errs = append(errs, "service: must not be empty")
	case !serviceRE.MatchString(c.Service):
		errs = append(errs, fmt.Sprintf("service: %q is not a PAM service name (letters, digits, '_', '.', '+', '-'; at most 64; it names a file in /etc/pam.d)", c.Service))
	}
	if c.MailDomain == "" {
		errs = append(errs, "mail_domain: required: addresses are <PAM user>@<mail_domain>")
	} else if err := address.ValidDomain(c.MailDomain); err != nil {
		errs = append(errs, fmt.Sprintf("mail_domain: %v", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, "timeout: must be greater than zero")
	} else if c.Timeout.D() > 10*time.Minute {
		errs = append(errs, "timeout: must be at most 10m")
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		errs = append(errs, fmt.Sprintf("workers: must be between 1 and %d", MaxWorkers))
	}
	if c.QueueTimeout < 0 {
		errs = append(errs, "queue_timeout: must not be negative")
	} else if c.QueueTimeout.D() > 10*time.Minute {
		errs = append(errs, "queue_timeout: must be at most 10m")
	}
	if len(errs) == 0 {
		return nil
	}
	// One line: the daemon prefixes it with the file, line and section.
	return errors.New(strings.Join(errs, "; "))
}

// Duration is the configuration file's duration type.
type Duration = tomltype.Duration
