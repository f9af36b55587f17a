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
// error saying so. The [authn.pam] section is internal/config's PAM, so the
// daemon's config file can always be parsed and checked.
package pam
