package mppclient

import (
	"bufio"
	"bytes"
)

// textWriter turns a message as it sits in a local file into MPP message
// text on the wire (RFC 1204 §2.3 DATA, which points at RFC 821 §4.5.2):
//
//   - every line ends in CRLF: a bare LF becomes CRLF, a CRLF stays as it
//     is, so LF-only and CRLF files give the same bytes on the wire;
//   - a line that starts with "." gets one more "." in front (dot
//     stuffing), so no line of the message, including one that is only
//     ".", can be read as the end of the text; the server removes the
//     extra dot again;
//   - Close ends a last line that has no newline and then sends the
//     terminating ".<CRLF>".
//
// A CR that is not followed by LF is message content and passes through
// untouched (the server decides what it accepts), except a CR that is the
// very last byte of the input: that is a CRLF cut short, and Close completes
// it rather than leaving a bare CR before the line end it adds.
//
// The writer streams: it holds no more than the state of the current line,
// so a message of any size costs the same memory.
type textWriter struct {
	w         *bufio.Writer
	lineStart bool  // the next byte begins a line
	lastCR    bool  // the last byte written was a CR inside the current line
	n         int64 // octets of message input taken
}

func newTextWriter(w *bufio.Writer) *textWriter {
	return &textWriter{w: w, lineStart: true}
}

// Write converts p and passes it on. Lines may be split across calls at any
// byte.
func (t *textWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if t.lineStart && p[0] == '.' {
			if err := t.w.WriteByte('.'); err != nil {
				return n - len(p), err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := t.w.Write(p); err != nil {
				return n - len(p), err
			}
			t.lineStart = false
			t.lastCR = p[len(p)-1] == '\r'
			break
		}
		if _, err := t.w.Write(p[:i]); err != nil {
			return n - len(p), err
		}
		crBefore := t.lastCR // the CR, if any, came in an earlier Write
		if i > 0 {
			crBefore = p[i-1] == '\r'
		}
		if !crBefore {
			if err := t.w.WriteByte('\r'); err != nil {
				return n - len(p), err
			}
		}
		if err := t.w.WriteByte('\n'); err != nil {
			return n - len(p), err
		}
		t.lineStart = true
		t.lastCR = false
		p = p[i+1:]
	}
	t.n += int64(n)
	return n, nil
}

// Close completes an unfinished last line and writes the terminator. It
// does not flush.
func (t *textWriter) Close() error {
	if !t.lineStart {
		end := "\r\n"
		if t.lastCR {
			end = "\n"
		}
		if _, err := t.w.WriteString(end); err != nil {
			return err
		}
	}
	_, err := t.w.WriteString(".\r\n")
	return err
}
