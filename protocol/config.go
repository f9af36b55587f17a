package protocol

import (
	"regexp"
	"time"

	"github.com/mppd/mppd/internal/message"
)

// Limits bound what one client can make the server do. Every one must be
// set; the defaults, and where each number comes from, are mppd.conf's
// (internal/config, mppd.conf(5) and mppd(8)); DefaultConfig has them too.
type Limits struct {
	// MaxLine is the longest command line accepted, CRLF included (RFC 5321
	// §4.5.3.1.4 uses 512 for SMTP commands; we take 1000 like its text
	// lines, since a PASS argument may be long). A longer line is drained
	// to its end and answered 500.
	MaxLine int
	// MaxMessage is the largest message text, in octets after
	// dot-unstuffing. A larger one is read to its end and answered 550.
	MaxMessage int64
	// MaxHeader is the largest header block (Postfix header_size_limit).
	MaxHeader int
	// MaxRecipients is the most recipients one message may name.
	MaxRecipients int
	// MaxReceived is the most Received: headers a message may carry
	// before it is taken for a mail loop (Postfix hopcount_limit).
	MaxReceived int
	// IdleTimeout bounds every read and write (RFC 1204 §3.3).
	IdleTimeout time.Duration
	// SessionTimeout bounds a whole connection.
	SessionTimeout time.Duration
	// MinDataRate is the slowest message text accepted, in octets per
	// second, after a grace of one IdleTimeout... see dataDeadline.
	MinDataRate int
	// MaxErrors is how many 500/501/503 replies a session may get; the
	// one that reaches it is followed by 451 and the connection closes.
	MaxErrors int
	// MaxJunk is how many NOOPs a session may send between messages
	// before each further one counts as an error.
	MaxJunk int
}

// Config is everything about a session that is not a backend.
type Config struct {
	// Hostname names this server in the greeting, Received: and
	// Message-ID:.
	Hostname string
	Limits   Limits
	// UserPattern is the USER grammar; nil leaves only the fixed rules.
	// Whatever it says, a user name never contains a control character,
	// a space or a NUL, never starts with '-', and is at most 256 octets.
	UserPattern *regexp.Regexp
	// SenderPolicy is what happens to a message whose From: names someone
	// other than the authenticated user.
	SenderPolicy message.SenderPolicy
	// ReceivedClientAddress puts the client's IP address in the Received:
	// header mppd adds (RFC 6409 §8.5 leaves it to local policy).
	ReceivedClientAddress bool
	// AuthFailureDelay is the least time a failed PASS takes, from the
	// command to the reply, plus up to 20% random extra, so that the
	// reason for the failure cannot be told from the timing. Zero turns
	// it off (tests only).
	AuthFailureDelay time.Duration
	// StagingDir is where each message is staged, as delivered, in one
	// unlinked file: the file the Deliverer gets. Empty means
	// os.TempDir().
	StagingDir string
	// MemoryThreshold is how much of a message is kept in memory before
	// it spills to StagingDir.
	MemoryThreshold int
}

// DefaultConfig returns mppd.conf's defaults (internal/config.Default) as
// the engine's configuration, with no Hostname: for running the engine
// without a config file, as the tests of the engine and of mpp do.
// cmd/mppd's TestProtocolConfigDefaults checks that the two agree.
func DefaultConfig() Config {
	msg := message.DefaultOptions()
	return Config{
		Limits: Limits{
			MaxLine:        1000,
			MaxMessage:     10_240_000,
			MaxHeader:      102_400,
			MaxRecipients:  msg.MaxRecipients,
			MaxReceived:    msg.MaxReceived,
			IdleTimeout:    5 * time.Minute,
			SessionTimeout: 20 * time.Minute,
			MinDataRate:    500,
			MaxErrors:      3,
			MaxJunk:        100,
		},
		UserPattern:           regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`),
		SenderPolicy:          msg.Sender,
		ReceivedClientAddress: msg.ReceivedClientAddress,
		AuthFailureDelay:      time.Second,
		MemoryThreshold:       1 << 20,
	}
}
