// Package logkey declares the words mppd's log lines are made of, once:
// the keys several packages write and every event= word. mppd(8) LOGGING
// lists the events (a test checks it), and fail2ban filters and operators'
// queries depend on them, so a word changes here or nowhere.
//
// The engine (package protocol) writes the outcome of each login and each
// message (EventLogin, EventAuthFailed, EventAuthnUnavailable,
// EventDelivered, EventDeliveryFailed, EventRejected). Backends add detail
// lines of their own, which carry Session and no outcome event.
package logkey

// Keys. One word for each thing.
const (
	Event    = "event"    // what happened: one of the Event words below
	Session  = "session"  // the session id, on every line about a session
	Client   = "client"   // the client's IP address
	User     = "user"     // the USER argument, quoted by the log handler
	Reason   = "reason"   // a stable word for why (a refusal, a failure)
	Duration = "duration" // how long something took
	Err      = "err"      // the underlying error, for people
	Backend  = "backend"  // which backend wrote a detail line
	Login    = "login"    // the identity a login earned (the backend's name for the user)
	Account  = "account"  // the local account mail is submitted as
)

// Outcome events, written by the engine.
const (
	EventLogin            = "login"             // PASS accepted (250)
	EventAuthFailed       = "auth-failed"       // PASS refused (530)
	EventAuthnUnavailable = "authn-unavailable" // the backend could not decide (451)
	EventDelivered        = "delivered"         // the message is queued (250)
	EventDeliveryFailed   = "delivery-failed"   // the backend failed it (451 or 550)
	EventRejected         = "rejected"          // the message broke a rule (550)
)

// Session events, written by the engine.
const (
	EventConnect            = "connect"
	EventDisconnect         = "disconnect"
	EventProtocolError      = "protocol-error"      // an unknown command or an over-long line
	EventBadSequence        = "bad-sequence"        // a command out of sequence (503)
	EventWrongProtocol      = "wrong-protocol"      // HTTP or TLS on the plain port
	EventTimeout            = "timeout"             // idle, data rate or session time limit
	EventClientGone         = "client-gone"         // the client closed or could not be written to
	EventErrorLimit         = "error-limit"         // too many errors, session closed
	EventJunkLimit          = "junk-limit"          // too many NOOPs
	EventShutdown           = "shutdown"            // the daemon is stopping
	EventThrottled          = "throttled"           // PASS refused for a blocked client
	EventBareLFInData       = "bare-lf-in-data"     // a dot line next to a bare LF
	EventStagingUnavailable = "staging-unavailable" // too little space to stage a message
	EventStagingFailed      = "staging-failed"      // staging a message failed
	EventPrepareFailed      = "prepare-failed"      // the header could not be prepared (451)
	EventSendLimit          = "send-limit"          // a message refused for a sending limit
)

// Daemon and backend events, outside any one outcome.
const (
	EventAuthnCacheHit  = "authn-cache-hit" // a login answered from the cache (info, cached=true)
	EventAuthnBusy      = "authn-busy"      // too many logins at once
	EventDeliveryBusy   = "delivery-busy"   // too many deliveries at once
	EventThrottleBlock  = "throttle-block"  // an address or network blocked
	EventTLS            = "tls"             // a TLS session established (debug)
	EventTLSFailed      = "tls-failed"      // a TLS handshake failed
	EventTLSReload      = "tls-reload"      // the certificate (re)loaded, or not
	EventTLSInvalidTime = "tls-cert-invalid-time"
	EventReload         = "reload"        // SIGHUP with nothing to reload
	EventExitOnIdle     = "exit-on-idle"  // no session for a while, exiting
	EventProxyRefused   = "proxy-refused" // a PROXY protocol header missing, invalid or not allowed

	// A login's window of sending-limit refusals is over (a summary).
	EventSendLimitSummary = "send-limit-summary"
)

// Monitor events: the privileged process about its engine.
const (
	EventPrivsepRefused   = "privsep-refused"   // a request of the engine refused (security event)
	EventPrivsepViolation = "privsep-violation" // a frame broke the protocol; the monitor stops
	EventAccountRefused   = "account-refused"   // a login's local account may not submit mail
)
