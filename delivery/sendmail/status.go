package sendmail

import (
	"fmt"

	"github.com/mppd/mppd/delivery"
)

// Exit statuses of sysexits.h that sendmail-compatible programs use
// (Postfix sendmail(1) DIAGNOSTICS, Sendmail's sendmail.c, Exim's
// exim(8)).
const (
	exUsage       = 64 // command line usage error
	exDataErr     = 65 // data format error
	exNoInput     = 66 // cannot open input
	exNoUser      = 67 // addressee unknown
	exNoHost      = 68 // host name unknown
	exUnavailable = 69 // service unavailable
	exSoftware    = 70 // internal software error
	exOSErr       = 71 // system error (e.g., can't fork)
	exOSFile      = 72 // critical OS file missing
	exCantCreat   = 73 // can't create (user) output file
	exIOErr       = 74 // input/output error
	exTempFail    = 75 // temporary failure; user is invited to retry
	exProtocol    = 76 // remote error in protocol
	exNoPerm      = 77 // permission denied
	exConfig      = 78 // configuration error
)

var exitNames = map[int]string{
	exUsage: "EX_USAGE", exDataErr: "EX_DATAERR", exNoInput: "EX_NOINPUT",
	exNoUser: "EX_NOUSER", exNoHost: "EX_NOHOST", exUnavailable: "EX_UNAVAILABLE",
	exSoftware: "EX_SOFTWARE", exOSErr: "EX_OSERR", exOSFile: "EX_OSFILE",
	exCantCreat: "EX_CANTCREAT", exIOErr: "EX_IOERR", exTempFail: "EX_TEMPFAIL",
	exProtocol: "EX_PROTOCOL", exNoPerm: "EX_NOPERM", exConfig: "EX_CONFIG",
}

// exitReason is the short log reason for an exit status: "exit 75
// (EX_TEMPFAIL)", "exit 1".
func exitReason(code int) string {
	if n, ok := exitNames[code]; ok {
		return fmt.Sprintf("exit %d (%s)", code, n)
	}
	return fmt.Sprintf("exit %d", code)
}

// mapExit turns sendmail's exit status into the backend's answer.
//
// 0 is the only success: the MTA has the message. The statuses that say the
// message itself or its addresses are wrong (EX_USAGE, EX_DATAERR,
// EX_NOUSER, EX_NOHOST, EX_NOPERM) are permanent: retrying the same message
// cannot help, so the client gets 550. Everything else is temporary (451),
// including the statuses sysexits.h calls transient (EX_TEMPFAIL, EX_OSERR,
// EX_IOERR, EX_UNAVAILABLE, EX_SOFTWARE, EX_CANTCREAT, EX_CONFIG) and every
// status we do not know: an unknown failure must leave the client holding
// its copy, never lose the message.
func mapExit(code int, err error) error {
	switch code {
	case 0:
		return nil
	case exUsage, exDataErr, exNoUser, exNoHost, exNoPerm:
		return delivery.Permanent(exitReason(code), err)
	default:
		return delivery.Temporary(exitReason(code), err)
	}
}
