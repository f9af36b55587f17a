package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/address"
)

// PAM is the [authn.pam] table of mppd.conf(5), read by authn/pam.
type PAM struct {
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
	DefaultPAMService      = "mppd"
	DefaultPAMTimeout      = 10 * time.Second
	DefaultPAMWorkers      = 16
	DefaultPAMQueueTimeout = 5 * time.Second

	// MaxPAMWorkers caps Workers: every worker may hold an OS thread, and the
	// Go runtime aborts the whole process past 10,000 threads.
	MaxPAMWorkers = 1024
)

// DefaultPAM returns the built-in [authn.pam] settings. MailDomain is
// empty: Load fills it with hostname when the file leaves it out
// (resolvePaths), and Validate requires it.
func DefaultPAM() PAM {
	return PAM{
		Service:      DefaultPAMService,
		Timeout:      Duration(DefaultPAMTimeout),
		Workers:      DefaultPAMWorkers,
		QueueTimeout: Duration(DefaultPAMQueueTimeout),
	}
}

// pamServiceRE is what a service name may look like. libpam opens
// /etc/pam.d/<service> by name, so a slash or ".." would reach another
// directory; no real service needs more than these characters.
var pamServiceRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$`)

// Validate checks c, naming the key at fault.
func (c PAM) Validate() error {
	var errs []string
	switch {
	case c.Service == "":
		errs = append(errs, "service: must not be empty")
	case !pamServiceRE.MatchString(c.Service):
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
	if c.Workers < 1 || c.Workers > MaxPAMWorkers {
		errs = append(errs, fmt.Sprintf("workers: must be between 1 and %d", MaxPAMWorkers))
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
