package protocol

// command is one parsed command line.
type command struct {
	// verb is upper-cased; commands are case-insensitive as in SMTP and
	// FTP, which RFC 1204 builds on.
	verb string
	// arg is everything after the single space that follows the verb,
	// byte for byte. A PASS argument may itself contain spaces.
	arg string
	// hasArg is true when a space followed the verb, even if nothing came
	// after it ("PASS " has an empty argument; "PASS" has none).
	hasArg bool
	// badSeparator is true when the verb was followed by something other
	// than a space, e.g. "USER\talice": the verb is known but the line is
	// not RFC 1204 syntax.
	badSeparator bool
}

// parseCommand splits a command line (without its line ending) into verb and
// argument. It never fails: what the verb and argument may be is for the
// handlers to judge.
func parseCommand(line []byte) command {
	end := len(line)
	for i, c := range line {
		if c == ' ' || c < 0x20 || c == 0x7f {
			end = i
			break
		}
	}
	cmd := command{verb: asciiUpper(line[:end])}
	switch {
	case end == len(line):
	case line[end] == ' ':
		cmd.hasArg = true
		cmd.arg = string(line[end+1:])
	default:
		cmd.badSeparator = true
		cmd.arg = string(line[end:])
	}
	return cmd
}

// asciiUpper upper-cases ASCII letters and leaves every other byte alone
// (strings.ToUpper would turn invalid UTF-8 into U+FFFD).
func asciiUpper(b []byte) string {
	u := []byte(string(b))
	for i, c := range u {
		if 'a' <= c && c <= 'z' {
			u[i] = c - 'a' + 'A'
		}
	}
	return string(u)
}

// httpVerbs are the first words of HTTP requests. A browser or proxy tricked
// into talking to mppd (a cross-protocol attack such as ALPACA) gets one 500
// and the connection is closed, rather than three 500s.
var httpVerbs = map[string]bool{
	"GET": true, "POST": true, "HEAD": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "PATCH": true, "TRACE": true,
}

// looksLikeTLS reports whether the first bytes of a session are a TLS
// handshake record (content type 22, version 3.x): a TLS client on the
// plain port. Nothing sensible can be said to it.
func looksLikeTLS(line []byte) bool {
	return len(line) >= 2 && line[0] == 0x16 && line[1] == 0x03
}

// hasControl reports whether s holds a control byte (including NUL, CR, TAB
// and DEL).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// logVerb is what the log shows of a verb the server did not recognise.
// A client out of step may send its password where a command belongs
// ("PASS:secret", "PASSsecret", or the password alone on a line), so the
// log names a verb only when it is one of the fixed list below, letters
// alone; anything else is logged as unlistedVerb. No byte the client chose
// reaches the log this way, and junk cannot fill or forge log lines.
func logVerb(cmd command) string {
	if loggableVerbs[cmd.verb] {
		return cmd.verb
	}
	return unlistedVerb
}

// unlistedVerb stands in the log for a verb not in loggableVerbs.
const unlistedVerb = "other"

// loggableVerbs are the verbs of the protocols a client mistaken about the
// port may speak (SMTP, POP3, FTP, HTTP): naming them in the log tells an
// operator what is knocking.
var loggableVerbs = map[string]bool{
	// SMTP
	"HELO": true, "EHLO": true, "MAIL": true, "RCPT": true, "RSET": true, "VRFY": true,
	"EXPN": true, "HELP": true, "AUTH": true, "STARTTLS": true, "BDAT": true, "ETRN": true,
	// POP3
	"APOP": true, "STAT": true, "LIST": true, "RETR": true, "DELE": true, "TOP": true,
	"UIDL": true, "CAPA": true, "STLS": true,
	// FTP
	"ACCT": true, "SYST": true, "FEAT": true, "TYPE": true, "PASV": true, "PORT": true,
	// HTTP
	"GET": true, "POST": true, "HEAD": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "PATCH": true, "TRACE": true,
}
