package message

import (
	"bytes"
	"errors"
	"strings"
)

// HeaderLength returns how much of msg is its header block: up to and
// including the empty line that ends it, and true; or len(msg) and false
// when msg has no empty line, in which case all of it is header and the
// body is empty. msg has LF line endings.
func HeaderLength(msg []byte) (int, bool) {
	if len(msg) > 0 && msg[0] == '\n' {
		return 1, true
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return i + 2, true
	}
	return len(msg), false
}

// field is one header field as received.
type field struct {
	raw   []byte // all its lines, each ending in '\n' except perhaps the last of the block
	name  string // lower-cased
	value []byte // after the colon, lines still folded
}

// unfolded returns the value with its line breaks removed (RFC 5322
// §2.2.3); continuation lines start with white space, which stays.
func (f field) unfolded() string {
	return strings.ReplaceAll(string(f.value), "\n", "")
}

// parseFields splits a header block into fields. A non-nil *Rejection means
// the client sent something malformed; a plain error means the caller
// passed more than a header block.
func parseFields(h []byte) ([]field, error) {
	var fields []field
	lineNo := 0
	for len(h) > 0 {
		lineNo++
		end := bytes.IndexByte(h, '\n')
		var line []byte
		if end < 0 {
			line, h = h, nil
		} else {
			line, h = h[:end+1], h[end+1:]
		}
		content := bytes.TrimSuffix(line, []byte("\n"))
		if len(content) == 0 {
			if len(h) > 0 {
				return nil, errors.New("message: header block continues after its empty line")
			}
			break
		}
		if i := bytes.IndexAny(content, "\x00\r"); i >= 0 {
			return nil, reject(ReasonBadHeader, "header line %d contains a NUL or bare CR", lineNo)
		}
		if content[0] == ' ' || content[0] == '\t' {
			if len(fields) == 0 {
				return nil, reject(ReasonBadHeader, "header line %d is a continuation line with no field before it", lineNo)
			}
			if len(bytes.Trim(content, " \t")) == 0 {
				return nil, reject(ReasonBadHeader, "header line %d is only white space", lineNo)
			}
			f := &fields[len(fields)-1]
			f.raw = f.raw[:len(f.raw)+len(line)] // lines are contiguous in h
			f.value = f.value[:len(f.value)+len(line)]
			continue
		}
		colon := bytes.IndexByte(content, ':')
		if colon <= 0 {
			return nil, reject(ReasonBadHeader, "header line %d is not a header field", lineNo)
		}
		for _, c := range content[:colon] {
			if c < 33 || c > 126 {
				return nil, reject(ReasonBadHeader, "header line %d has a field name with a space, control or non-ASCII byte", lineNo)
			}
		}
		fields = append(fields, field{
			raw:   line,
			name:  strings.ToLower(string(content[:colon])),
			value: line[colon+1:],
		})
	}
	// value must not include the final line break: the value of a field
	// is everything up to, not including, its CRLF.
	for i := range fields {
		fields[i].value = bytes.TrimSuffix(fields[i].value, []byte("\n"))
	}
	return fields, nil
}

// fieldName gives the canonical spelling of the field names this package
// names in texts and logs.
func fieldName(lower string) string {
	switch lower {
	case "to":
		return "To"
	case "cc":
		return "Cc"
	case "bcc":
		return "Bcc"
	case "resent-to":
		return "Resent-To"
	case "resent-cc":
		return "Resent-Cc"
	case "resent-bcc":
		return "Resent-Bcc"
	case "from":
		return "From"
	case "sender":
		return "Sender"
	}
	return "?"
}
