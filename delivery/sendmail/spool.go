package sendmail

import "golang.org/x/sys/unix"

// spoolDirs are the queue directories the MTAs' submission programs write
// (Postfix's postdrop, Sendmail's client queue, Exim, OpenSMTPD's
// smtpctl): the ones the packaged mppd.service makes writable with
// ReadWritePaths=. systemd skips a directory that does not exist when mppd
// starts, so one that an MTA installed later creates stays read-only inside
// mppd's sandbox. Postfix's postdrop then retries for ever ("Read-only file
// system") and the message would wait for the sendmail timeout.
var spoolDirs = []string{
	"/var/spool/postfix/maildrop",
	"/var/spool/mqueue-client",
	"/var/spool/clientmqueue",
	"/var/spool/exim4",
	"/var/spool/smtpd/offline",
}

// readOnlySpool returns the first of dirs that exists on a read-only
// mount, or "". The mount flag is asked for (statfs), not the permission:
// mppd cannot write these directories itself, only the MTA's set-group-id
// helpers can.
func readOnlySpool(dirs []string) string {
	for _, d := range dirs {
		var st unix.Statfs_t
		if unix.Statfs(d, &st) != nil {
			continue
		}
		if st.Flags&unix.ST_RDONLY != 0 {
			return d
		}
	}
	return ""
}
