package passwdfile

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are the argon2id parameters (RFC 9106 §3.1) HashPassword
// uses for new hashes. Hashes already in a file carry their own parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes
	SaltLen uint32 // octets
	KeyLen  uint32 // octets
}

// DefaultArgon2Params returns m=19 MiB, t=2, p=1, a 16-octet salt and a
// 32-octet key.
//
// Why not RFC 9106 §4's 64 MiB (or 2 GiB) profiles: mppd verifies a hash on
// every login, and many sessions may log in at once, so the memory of one
// verification times the number of verifications allowed to run together
// (runtime.NumCPU, see Backend) is what the daemon must be able to
// spare. 19 MiB with two passes is the widely used OWASP baseline for
// argon2id, costs a few tens of milliseconds on current hardware, and still
// makes an offline guess cost 19 MiB of memory-hard work. An administrator
// who wants more can put any argon2id hash made elsewhere in the file.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// hashParams is what HashPassword uses; tests lower it so they stay quick.
var hashParams = DefaultArgon2Params()

// Limits on the hashes a file may hold. A typo such as m=4194304 or a
// bcrypt cost of 31 would otherwise turn every login into minutes of work
// or gigabytes of memory, so such a line is a parse error instead.
const (
	maxArgon2Memory  = 1 << 20 // KiB (1 GiB)
	maxArgon2Time    = 64
	minArgon2SaltLen = 8
	maxArgon2SaltLen = 64
	minArgon2KeyLen  = 16
	maxArgon2KeyLen  = 64
	maxBcryptCost    = 16
)

// HashPassword returns an argon2id hash of password in the PHC string
// format ($argon2id$v=19$m=..,t=..,p=..$salt$key), with a fresh random
// salt and the parameters of DefaultArgon2Params.
func HashPassword(password string) (string, error) {
	return HashPasswordWith(password, hashParams)
}

// HashPasswordWith is HashPassword with explicit parameters.
func HashPasswordWith(password string, p Argon2Params) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return formatArgon2id(p, salt, key), nil
}

func formatArgon2id(p Argon2Params, salt, key []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

func (p Argon2Params) check() error {
	switch {
	case p.Threads < 1:
		return errors.New("argon2id: p must be at least 1")
	case p.Memory < 8*uint32(p.Threads):
		// RFC 9106 §3.1: m is at least 8*p KiB.
		return fmt.Errorf("argon2id: m=%d is below 8*p", p.Memory)
	case p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2id: m=%d is above the limit of %d KiB", p.Memory, maxArgon2Memory)
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2id: t=%d is outside 1..%d", p.Time, maxArgon2Time)
	case p.SaltLen < minArgon2SaltLen || p.SaltLen > maxArgon2SaltLen:
		return fmt.Errorf("argon2id: salt of %d octets is outside %d..%d", p.SaltLen, minArgon2SaltLen, maxArgon2SaltLen)
	case p.KeyLen < minArgon2KeyLen || p.KeyLen > maxArgon2KeyLen:
		return fmt.Errorf("argon2id: hash of %d octets is outside %d..%d", p.KeyLen, minArgon2KeyLen, maxArgon2KeyLen)
	}
	return nil
}

// verifier is one parsed hash.
type verifier interface {
	// verify reports whether password matches, in time that depends on
	// the hash's parameters, not on where a mismatch is.
	verify(password []byte) bool
	// kind names the scheme and its cost, so hashes of the same cost
	// group together (see table.dummy).
	kind() string
	// decoy returns a hash of the same kind and cost that matches no
	// password anyone knows, for spending the same time on unknown users.
	decoy() (verifier, error)
}

// parseHash parses the hash field of a line. Errors never quote the hash
// itself, only its scheme prefix.
func parseHash(s string) (verifier, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case s == "":
		return nil, errors.New("empty password hash")
	}
	return nil, fmt.Errorf("unknown hash scheme %q (want bcrypt $2a$, $2b$, $2y$ or $argon2id$)", schemeOf(s))
}

// schemeOf returns the "$id$" prefix of a modular crypt string, or a
// short, safe stand-in when there is none.
func schemeOf(s string) string {
	if strings.HasPrefix(s, "$") {
		if i := strings.IndexByte(s[1:], '$'); i >= 0 && i < 16 {
			return s[:i+2]
		}
	}
	return "no $scheme$ prefix"
}

type argon2idHash struct {
	p    Argon2Params
	salt []byte
	key  []byte
}

func parseArgon2id(s string) (verifier, error) {
	// $argon2id$v=19$m=65536,t=3,p=4$salt$key: the PHC string format as
	// the reference implementation writes it, parameters in that order.
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, errors.New("argon2id: want $argon2id$v=19$m=M,t=T,p=P$salt$hash")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("argon2id: unsupported version %q (want v=%d)", parts[2], argon2.Version)
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, errors.New("argon2id: want parameters m=M,t=T,p=P")
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return nil, fmt.Errorf("argon2id: want parameter %s= in position %d", name, i+1)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id: bad value for %s: %q", name, v)
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return nil, fmt.Errorf("argon2id: p=%d is above 255", vals[2])
	}
	enc := base64.RawStdEncoding.Strict()
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return nil, errors.New("argon2id: salt is not unpadded base64")
	}
	key, err := enc.DecodeString(parts[5])
	if err != nil {
		return nil, errors.New("argon2id: hash is not unpadded base64")
	}
	h := &argon2idHash{
		p: Argon2Params{
			Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2]),
			SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
		},
		salt: salt,
		key:  key,
	}
	if err := h.p.check(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *argon2idHash) verify(password []byte) bool {
	got := argon2.IDKey(password, h.salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

func (h *argon2idHash) kind() string {
	return fmt.Sprintf("argon2id m=%d t=%d p=%d k=%d", h.p.Memory, h.p.Time, h.p.Threads, h.p.KeyLen)
}

func (h *argon2idHash) decoy() (verifier, error) {
	// Same parameters, random salt and key: verifying costs exactly what a
	// real entry costs, and no password matches it.
	d := &argon2idHash{p: h.p, salt: make([]byte, len(h.salt)), key: make([]byte, len(h.key))}
	if _, err := rand.Read(d.salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(d.key); err != nil {
		return nil, err
	}
	return d, nil
}

type bcryptHash struct {
	hash []byte
	cost int
}

// bcryptAlphabet is bcrypt's own base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s string) (verifier, error) {
	// $2b$CC$ + 22 characters of salt + 31 of hash = 60 characters.
	if len(s) != 60 || s[6] != '$' || strings.Trim(s[7:], bcryptAlphabet) != "" {
		return nil, errors.New("bcrypt: want $2b$NN$ followed by 53 characters of [./A-Za-z0-9]")
	}
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("bcrypt: %v", err)
	}
	if cost > maxBcryptCost {
		return nil, fmt.Errorf("bcrypt: cost %d is above the limit of %d", cost, maxBcryptCost)
	}
	return &bcryptHash{hash: []byte(s), cost: cost}, nil
}

func (h *bcryptHash) verify(password []byte) bool {
	// bcrypt looks at the first 72 octets of a password only.
	return bcrypt.CompareHashAndPassword(h.hash, password) == nil
}

func (h *bcryptHash) kind() string { return fmt.Sprintf("bcrypt cost=%d", h.cost) }

func (h *bcryptHash) decoy() (verifier, error) {
	// Hash a random password at the cheapest cost, then write our cost
	// into the string: checking it then runs the full 2^cost rounds
	// without our having to spend them here, and nothing matches it.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cheap, err := bcrypt.GenerateFromPassword(secret, bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	i := bytes.IndexByte(cheap[1:], '$') + 1 // end of "$2a"
	d := fmt.Appendf(nil, "%s$%02d%s", cheap[:i], h.cost, cheap[i+3:])
	return &bcryptHash{hash: d, cost: h.cost}, nil
}
