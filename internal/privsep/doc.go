// Package privsep is the channel between mppd's two processes: the
// privileged monitor, which runs the authentication and delivery backends,
// and the unprivileged engine, which does everything that touches a
// client's bytes.
//
// The two are joined by a socketpair(AF_UNIX, SOCK_SEQPACKET), which keeps
// message boundaries and can carry file descriptors. Each packet is one
// frame: one JSON object of at most MaxFrame octets with a "type" and, for
// requests, an "id" the engine chooses. The engine sends
//
//	auth    {id, user, password, client, session}
//	deliver {id, token, session, sender, recipients} + one descriptor
//	end     {id, session, token}
//	notify  {id, state}
//
// and the monitor sends hello (first, once), tls (after a reload) and a
// reply {id, result, ...} to every auth and deliver.
//
// The monitor treats the engine as hostile. A frame is decoded into the
// struct of its type with unknown members refused, and every field is
// checked against hard limits. A frame that is malformed, oversized, of an
// unknown type, reuses the id of a request still in flight, or would put
// more than MaxInFlight requests in flight is a violation: Serve logs it
// (event=privsep-violation), reads nothing more, lets the requests it
// started finish, and returns a *ViolationError, on which the caller stops
// the engine and exits non-zero. A well-formed request that asks for
// something the engine may not have is refused instead (reply "refused",
// logged as event=privsep-refused) and the monitor carries on: a delivery
// without a valid token, with another session's token, with an expired
// token, from a sender that is not one of the identity's addresses, with
// anything but exactly one unlinked regular file no larger than
// MaxMessage, or past the login's sending limits. The engine turns a
// refusal into a temporary failure (451) for its client.
//
// Tokens. Each successful login earns a token: 32 random octets in hex,
// bound to the identity the backend returned (login, addresses, local
// account), to the session, and to an expiry SessionTimeout later. A
// delivery's envelope takes its login and account from the token, never
// from the frame; so an engine under an attacker's control can post only
// as users whose right password it has just been given.
//
// Sending limits. The monitor keeps its own count of each login's
// messages and recipients (internal/sendlimit, the same configuration as
// the engine's), so that such an engine is also held to those users'
// limits. The engine checks first and gives its client the proper reply;
// the monitor's check is the one an attacker cannot skip. Its count lags
// the engine's by the moment a request takes to arrive, so at a window's
// edge it can refuse a message a sound engine let through: a refusal,
// not a violation.
//
// Decisions the design left open, and why:
//   - User and password travel as octets (base64 in JSON): a password need
//     not be UTF-8, and JSON text would silently change it.
//   - end gets no reply; the engine has nothing to wait for. An end naming
//     a token that is already gone (it expired) is ignored; one naming
//     another session's token is refused and logged. notify gets no reply
//     either; a line outside READY=1, STOPPING=1, WATCHDOG=1, RELOADING=1,
//     MONOTONIC_USEC=<digits> and STATUS=<printable, at most 200 octets> is
//     a violation.
//   - Any login request for a session drops that session's earlier token
//     first, whatever its outcome: a session holds at most one token, that
//     of its latest successful login.
//   - The staged message must be a regular file with no links (unlinked,
//     as staging leaves it), so the engine cannot hand over a named file
//     such as one under /proc whose reads are checked against the reader.
//     Its size is checked when the request arrives; the engine, which wrote
//     the message, could still change it afterwards, but that gains it
//     nothing it could not have put in the message in the first place.
//   - A file descriptor on any frame but deliver is a violation. On a
//     deliver, a count other than one (including so many that the kernel
//     cut them off) is a refusal.
//   - A zero-length packet, which the net package reads as end of stream,
//     is told apart from the engine closing its end by polling for a
//     hang-up; it is a violation.
//   - The monitor is trusted by the engine: a frame from it that does not
//     decode makes the engine's Client give up the connection (Done).
//   - Frames in both directions are limited to MaxFrame, the hello
//     included; a configuration and certificate too large for it is a
//     start-up error.
//   - The engine's Client never has more than MaxInFlight requests in
//     flight: a request holds its slot until the reply arrives, even when
//     its caller stopped waiting, so a legitimate engine can never be
//     taken for a flood.
package privsep
