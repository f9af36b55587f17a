package privsep

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// MaxFrame is the largest frame, in octets, either side sends or accepts.
const MaxFrame = 64 << 10

// Hard limits on request fields. The engine has checked the client's text
// against tighter rules already; these hold whatever the engine says.
const (
	maxUser      = 256
	maxPassword  = 512
	maxSession   = 64
	maxAddress   = 320
	tokenLen     = 64 // hex digits: 32 random octets
	maxReason    = 200
	maxStatus    = 200 // octets after STATUS=
	maxNotifyLen = 1024
)

// Frame types.
const (
	typeAuth    = "auth"
	typeDeliver = "deliver"
	typeEnd     = "end"
	typeNotify  = "notify"
	typeReply   = "reply"
	typeHello   = "hello"
	typeTLS     = "tls"
)

// Results in replies.
const (
	resultOK          = "ok"          // auth: logged in
	resultBad         = "bad"         // auth: bad credentials or account refused
	resultUnavailable = "unavailable" // auth: the backend could not decide
	resultQueued      = "queued"      // deliver: the mail system took it
	resultTemporary   = "temporary"   // deliver: try again later
	resultPermanent   = "permanent"   // deliver: never as it is
	resultRefused     = "refused"     // deliver: the monitor refused the request
)

// authRequest asks the monitor to check a login. User and Password are
// octets (base64 in JSON) because a password need not be UTF-8 text.
type authRequest struct {
	Type     string `json:"type"`
	ID       uint64 `json:"id"`
	User     []byte `json:"user"`
	Password []byte `json:"password"`
	Client   string `json:"client"`
	Session  string `json:"session"`
}

// deliverRequest asks the monitor to deliver the message in the one file
// descriptor that comes with the frame.
type deliverRequest struct {
	Type       string   `json:"type"`
	ID         uint64   `json:"id"`
	Token      string   `json:"token"`
	Session    string   `json:"session"`
	Sender     string   `json:"sender"`
	Recipients []string `json:"recipients"`
}

// endRequest says a session ended; its token is forgotten. No reply.
type endRequest struct {
	Type    string `json:"type"`
	ID      uint64 `json:"id"`
	Session string `json:"session"`
	Token   string `json:"token"`
}

// notifyRequest asks the monitor to pass State to the service manager.
// No reply.
type notifyRequest struct {
	Type  string `json:"type"`
	ID    uint64 `json:"id"`
	State string `json:"state"`
}

// reply answers an auth or deliver request with the same ID.
type reply struct {
	Type      string   `json:"type"`
	ID        uint64   `json:"id"`
	Result    string   `json:"result"`
	Reason    string   `json:"reason,omitempty"`
	Login     string   `json:"login,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	Token     string   `json:"token,omitempty"`
}

// Listener names one listening socket the engine receives, in the order of
// the engine's extra files (fd 3 onwards, after the socketpair).
type Listener struct {
	Name string `json:"name"` // the systemd FileDescriptorName or the address
	Role string `json:"role"` // what it serves ("mpp", "metrics", ...)
}

// Hello is the first frame the monitor sends: everything the engine needs
// to know that it cannot read itself.
type Hello struct {
	Type       string     `json:"type"`
	ConfigName string     `json:"config_name"` // the file's name, for messages
	Config     string     `json:"config"`      // the file's text
	Listeners  []Listener `json:"listeners"`
	TLSCert    string     `json:"tls_cert,omitempty"` // PEM
	TLSKey     string     `json:"tls_key,omitempty"`  // PEM
	// Activated says the listeners came from systemd (exit_on_idle
	// applies only then).
	Activated bool `json:"activated,omitempty"`
	// WatchdogUSec is the systemd watchdog interval the monitor was
	// given (WATCHDOG_USEC), 0 for none; the engine's WATCHDOG=1 goes
	// through the monitor.
	WatchdogUSec int64 `json:"watchdog_usec,omitempty"`
}

// TLSPair is a certificate chain and its key, in PEM.
type TLSPair struct {
	Cert, Key string
}

// tlsFrame carries a new TLS pair after the monitor re-read it.
type tlsFrame struct {
	Type string `json:"type"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// encode marshals v, which must fit in MaxFrame.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("privsep: a %T frame of %d octets is larger than %d", v, len(b), MaxFrame)
	}
	return b, nil
}

// frameType reads the "type" member of a frame, which must be one JSON
// object and nothing else.
func frameType(b []byte) (string, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := decodeStrict(b, &head, false); err != nil {
		return "", err
	}
	if head.Type == "" {
		return "", errors.New("no type")
	}
	return head.Type, nil
}

// decodeStrict decodes b into v: exactly one JSON object, and, when strict,
// no member v has no field for.
func decodeStrict(b []byte, v any, strict bool) error {
	if len(b) > MaxFrame {
		return fmt.Errorf("frame of %d octets", len(b))
	}
	if !utf8.Valid(b) {
		return errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}

// request is one decoded, validated engine -> monitor frame.
type request interface {
	requestID() uint64
}

func (r *authRequest) requestID() uint64    { return r.ID }
func (r *deliverRequest) requestID() uint64 { return r.ID }
func (r *endRequest) requestID() uint64     { return r.ID }
func (r *notifyRequest) requestID() uint64  { return r.ID }

// requestLimits are the limits that depend on the configuration.
type requestLimits struct {
	MaxRecipients int
}

// decodeRequest decodes and validates one engine -> monitor frame. Any
// error means the frame is malformed: the monitor treats it as a
// violation.
func decodeRequest(b []byte, lim requestLimits) (request, error) {
	typ, err := frameType(b)
	if err != nil {
		return nil, err
	}
	var req interface {
		request
		validate(requestLimits) error
	}
	switch typ {
	case typeAuth:
		req = &authRequest{}
	case typeDeliver:
		req = &deliverRequest{}
	case typeEnd:
		req = &endRequest{}
	case typeNotify:
		req = &notifyRequest{}
	default:
		return nil, fmt.Errorf("unknown frame type %q", truncate(typ, 32))
	}
	if err := decodeStrict(b, req, true); err != nil {
		return nil, fmt.Errorf("%s frame: %w", typ, err)
	}
	if req.requestID() == 0 {
		return nil, fmt.Errorf("%s frame: id 0", typ)
	}
	if err := req.validate(lim); err != nil {
		return nil, fmt.Errorf("%s frame: %w", typ, err)
	}
	return req, nil
}

func (r *authRequest) validate(requestLimits) error {
	switch {
	case len(r.User) == 0 || len(r.User) > maxUser:
		return fmt.Errorf("user of %d octets", len(r.User))
	case bytes.ContainsFunc(r.User, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		return errors.New("user has a control character or a space")
	case len(r.Password) == 0 || len(r.Password) > maxPassword:
		return fmt.Errorf("password of %d octets", len(r.Password))
	case bytes.ContainsAny(r.Password, "\x00\r\n"):
		return errors.New("password has NUL, CR or LF")
	}
	if err := validClient(r.Client); err != nil {
		return err
	}
	return validSession(r.Session)
}

func (r *deliverRequest) validate(lim requestLimits) error {
	if err := validToken(r.Token); err != nil {
		return err
	}
	if err := validSession(r.Session); err != nil {
		return err
	}
	if err := validAddress(r.Sender); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	if len(r.Recipients) == 0 || len(r.Recipients) > lim.MaxRecipients {
		return fmt.Errorf("%d recipients (at most %d)", len(r.Recipients), lim.MaxRecipients)
	}
	for i, rcpt := range r.Recipients {
		if err := validAddress(rcpt); err != nil {
			return fmt.Errorf("recipient %d: %w", i, err)
		}
	}
	return nil
}

func (r *endRequest) validate(requestLimits) error {
	if err := validSession(r.Session); err != nil {
		return err
	}
	return validToken(r.Token)
}

func (r *notifyRequest) validate(requestLimits) error {
	return validNotify(r.State)
}

// validNotify accepts a newline-separated list of the sd_notify assignments
// the engine has reason to send, and nothing else.
func validNotify(state string) error {
	if state == "" || len(state) > maxNotifyLen {
		return fmt.Errorf("notify state of %d octets", len(state))
	}
	for _, line := range strings.Split(state, "\n") {
		switch {
		case line == "READY=1", line == "STOPPING=1", line == "WATCHDOG=1", line == "RELOADING=1":
		case strings.HasPrefix(line, "MONOTONIC_USEC="):
			digits := strings.TrimPrefix(line, "MONOTONIC_USEC=")
			if digits == "" || len(digits) > 20 || strings.Trim(digits, "0123456789") != "" {
				return errors.New("MONOTONIC_USEC is not a number")
			}
		case strings.HasPrefix(line, "STATUS="):
			text := strings.TrimPrefix(line, "STATUS=")
			if len(text) > maxStatus || !printable(text) {
				return errors.New("STATUS is too long or not printable")
			}
		default:
			return fmt.Errorf("notify line %q is not allowed", truncate(line, 32))
		}
	}
	return nil
}

func validToken(t string) error {
	if len(t) != tokenLen {
		return fmt.Errorf("token of %d characters", len(t))
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return errors.New("token is not lowercase hex")
		}
	}
	return nil
}

func validSession(s string) error {
	if s == "" || len(s) > maxSession {
		return fmt.Errorf("session id of %d octets", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return errors.New("session id has a character outside [A-Za-z0-9-]")
		}
	}
	return nil
}

func validClient(c string) error {
	a, err := netip.ParseAddr(c)
	if err != nil || a.Zone() != "" {
		return errors.New("client is not an IP address")
	}
	return nil
}

// validAddress is the shape the engine guarantees for envelope addresses:
// 1 to 320 octets, no control character or space, no leading '-' (so it
// can never be read as an option).
func validAddress(a string) error {
	switch {
	case a == "" || len(a) > maxAddress:
		return fmt.Errorf("address of %d octets", len(a))
	case a[0] == '-':
		return errors.New("address starts with '-'")
	case hasControlOrSpace(a):
		return errors.New("address has a control character or a space")
	}
	return nil
}

func hasControlOrSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return true
		}
	}
	return false
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// newToken turns 32 random octets into a token.
func newToken(random [32]byte) string { return hex.EncodeToString(random[:]) }
