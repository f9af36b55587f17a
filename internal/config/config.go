// Package config describes mppd's configuration file (TOML): its sections,
// their defaults, and the checks every value gets once at load time. It
// builds nothing: cmd/mppd turns a *Config into the protocol engine's
// Config and the chosen authentication and delivery backends, each of
// which reads its own section type from here. So that the import graph
// flows one way, this package imports no backend and not the engine
// (TestImports).
//
// Loading starts from Default(), overlays the file, and validates. Unknown
// keys and bad values are errors of the form "FILE:LINE: KEY: problem", so
// a typo never silently falls back to a default.
//
// Relative paths in the file (the password file, the maildir root, the
// staging directory) are resolved against the directory holding the config
// file, not the daemon's working directory, so a config works the same
// from wherever mppd is started.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/tomltype"
)

// DefaultPath is where mppd looks for its config file without --config.
const DefaultPath = "/etc/mppd/mppd.toml"

// DefaultPort is the MPP port, RFC 1204 §3.2.
const DefaultPort = 218

// Config is the whole configuration file. The toml tags are the file's
// keys; the fields without tags are derived by Load.
type Config struct {
	// Hostname names this server in the greeting, Received: and
	// Message-ID:. Empty means os.Hostname().
	Hostname string `toml:"hostname"`
	// Listen is the TCP addresses to accept MPP connections on.
	Listen []string `toml:"listen"`
	// ListenTLS is the TCP addresses to accept MPP inside TLS on (TLS
	// from the first byte; MPP has no STARTTLS). See sockets.go.
	ListenTLS []string `toml:"listen_tls"`
	// DrainTimeout is how long a shutdown waits for sessions to end
	// before closing their connections.
	DrainTimeout Duration `toml:"drain_timeout"`
	// MaxSessions caps concurrent sessions; more are refused with 451.
	MaxSessions int `toml:"max_sessions"`
	// MaxSessionsPerClient caps concurrent sessions from one IP address,
	// except from TrustedNetworks.
	MaxSessionsPerClient int `toml:"max_sessions_per_client"`
	// MaxSessionsPerNetwork caps concurrent sessions from one network
	// (throttle.ipv4_prefix, throttle.ipv6_prefix), except from
	// TrustedNetworks; 0 means 4 × MaxSessionsPerClient
	// (SessionsPerNetwork).
	MaxSessionsPerNetwork int `toml:"max_sessions_per_network"`
	// TrustedNetworks are CIDR prefixes exempt from the per-client and
	// per-network session caps.
	TrustedNetworks []string `toml:"trusted_networks"`
	// ProxyProtocolFrom are the CIDR prefixes of load balancers that
	// send a PROXY protocol header (v1 or v2) in front of each
	// connection; from them the header is required, and its address is
	// the client's. Empty (the default): no header is accepted.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
	// EngineUser is the account the unprivileged engine process runs as
	// when mppd is started as root.
	EngineUser string `toml:"engine_user"`

	Log      Log      `toml:"log"`
	Session  Session  `toml:"session"`
	Message  Message  `toml:"message"`
	Authn    Authn    `toml:"authn"`
	Delivery Delivery `toml:"delivery"`
	Throttle Throttle `toml:"throttle"`
	Limits   Limits   `toml:"limits"`
	TLS      TLS      `toml:"tls"`
	Systemd  Systemd  `toml:"systemd"`
	Metrics  Metrics  `toml:"metrics"`

	// Path is the file the config was loaded from ("" for Default()).
	Path string `toml:"-"`

	// lines maps each key the file sets to its line (keyLines), so that
	// a backend that cannot be built names the line too.
	lines map[string]int

	trusted     []netip.Prefix
	proxyFrom   []netip.Prefix
	userPattern *regexp.Regexp
	level       slog.Level
}

// Log says how mppd logs (always to stderr).
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text, json
}

// Session holds the per-connection limits.
type Session struct {
	MaxLine          int      `toml:"max_line"`
	IdleTimeout      Duration `toml:"idle_timeout"`
	SessionTimeout   Duration `toml:"session_timeout"`
	MinDataRate      int      `toml:"min_data_rate"`
	MaxErrors        int      `toml:"max_errors"`
	MaxJunkCommands  int      `toml:"max_junk_commands"`
	UserPattern      string   `toml:"user_pattern"`
	AuthFailureDelay Duration `toml:"auth_failure_delay"`
}

// Message holds the per-message limits and policies.
type Message struct {
	MaxSize               int64                `toml:"max_size"`
	MaxHeaderSize         int                  `toml:"max_header_size"`
	MaxRecipients         int                  `toml:"max_recipients"`
	MaxReceived           int                  `toml:"max_received"`
	SenderPolicy          message.SenderPolicy `toml:"sender_policy"`
	ReceivedClientAddress bool                 `toml:"received_client_address"`
	StagingDir            string               `toml:"staging_dir"`
	MemoryThreshold       int                  `toml:"memory_threshold"`
}

// Authn chooses the authentication backend and holds each backend's
// section. Only the chosen backend's section is validated and used.
type Authn struct {
	Backend    string     `toml:"backend"`
	Passwdfile Passwdfile `toml:"passwdfile"`
	PAM        PAM        `toml:"pam"`
	LDAP       LDAP       `toml:"ldap"`
	// Later backends add their section here, a case in authnSection,
	// and a case in cmd/mppd's buildAuthenticator.

	// MaxConcurrent caps the authentications running at once; more
	// wait up to QueueTimeout, then get 451 (authn.Limit).
	MaxConcurrent int      `toml:"max_concurrent"`
	QueueTimeout  Duration `toml:"queue_timeout"`
	// Cache is the optional result cache (authn/cache).
	Cache Cache `toml:"cache"`
}

// Delivery chooses the delivery backend and holds each backend's section.
type Delivery struct {
	Backend  string   `toml:"backend"`
	Maildir  Maildir  `toml:"maildir"`
	Sendmail Sendmail `toml:"sendmail"`
	// Later backends add their section here, a case in
	// deliverySection, and a case in cmd/mppd's buildDeliverer.

	// MaxConcurrent caps the deliveries running at once; more wait up
	// to QueueTimeout, then get 451 (delivery.Limit).
	MaxConcurrent int      `toml:"max_concurrent"`
	QueueTimeout  Duration `toml:"queue_timeout"`
}

// DefaultUserPattern is the grammar a USER argument must match by default:
// a POSIX-style login name (no leading '-', not starting with a digit, at
// most 32 characters).
const DefaultUserPattern = `^[a-z_][a-z0-9_.-]{0,31}$`

// Default returns the built-in configuration: what an empty file means.
// Each setting's default is set here and nowhere else, except the message
// rules' (internal/message's DefaultOptions, which Prepare also applies to
// callers that leave a limit zero); mppd.conf(5) and mppd(8) give the
// reasons.
func Default() *Config {
	msg := message.DefaultOptions()
	return &Config{
		Listen:               []string{":" + strconv.Itoa(DefaultPort)},
		ListenTLS:            []string{},
		DrainTimeout:         Duration(30 * time.Second),
		MaxSessions:          10000,
		MaxSessionsPerClient: 50,
		EngineUser:           "mppd",
		TrustedNetworks:      []string{"127.0.0.0/8", "::1/128"},
		ProxyProtocolFrom:    []string{},
		Log:                  Log{Level: "info", Format: "text"},
		Session: Session{
			// RFC 5321 §4.5.3.1.4 uses 512 for SMTP commands; 1000,
			// like its text lines, since a PASS argument may be long.
			MaxLine:          1000,
			IdleTimeout:      Duration(5 * time.Minute),
			SessionTimeout:   Duration(20 * time.Minute),
			MinDataRate:      500,
			MaxErrors:        3,
			MaxJunkCommands:  100,
			UserPattern:      DefaultUserPattern,
			AuthFailureDelay: Duration(time.Second),
		},
		Message: Message{
			MaxSize:               10_240_000,
			MaxHeaderSize:         102_400, // Postfix header_size_limit
			MaxRecipients:         msg.MaxRecipients,
			MaxReceived:           msg.MaxReceived,
			SenderPolicy:          msg.Sender,
			ReceivedClientAddress: msg.ReceivedClientAddress,
			MemoryThreshold:       1 << 20,
		},
		Authn: Authn{
			Backend:    "passwdfile",
			Passwdfile: DefaultPasswdfile(),
			PAM:        DefaultPAM(),
			LDAP:       DefaultLDAP(),

			MaxConcurrent: defaultAuthnMaxConcurrent,
			QueueTimeout:  Duration(defaultAuthnQueueTimeout),
			Cache:         DefaultCache(),
		},
		Delivery: Delivery{
			Backend:  "maildir",
			Maildir:  DefaultMaildir(),
			Sendmail: DefaultSendmail(),

			MaxConcurrent: defaultDeliveryMaxConcurrent,
			QueueTimeout:  Duration(defaultDeliveryQueueTimeout),
		},
		TLS:     defaultTLS(),
		Systemd: defaultSystemd(),

		Throttle: defaultThrottle(),
		Limits:   defaultLimits(),
	}
}

// Load reads the file at path over Default() and validates the result.
// Every error names the file, and where it can the line and the key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

// Parse is Load of a file's text already read (the engine gets the text
// from the monitor). path names the file in errors and relative paths.
func Parse(path string, data []byte) (*Config, error) { return parse(path, data) }

// parse is Load without the file system read, for tests.
func parse(path string, data []byte) (*Config, error) {
	c := Default()
	c.Path = path
	lines, err := keyLines(path, data)
	if err != nil {
		return nil, err
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeError(path, err)
	}
	if err := c.validate(lines); err != nil {
		return nil, err
	}
	c.lines = lines
	return c, nil
}

// decodeError rewrites go-toml's errors as "FILE:LINE: KEY: message", one
// line per problem (strict mode reports every unknown key at once).
func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var msgs []string
		for i := range strict.Errors {
			e := &strict.Errors[i]
			row, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: unknown key", path, row, strings.Join(e.Key(), ".")))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("%s:%d: %s: %s", path, row, strings.Join(k, "."), msg)
		}
		return fmt.Errorf("%s:%d: %s", path, row, msg)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Duration is the configuration file's duration type.
type Duration = tomltype.Duration
