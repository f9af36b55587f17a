package protocol

import (
	"bufio"
	"bytes"
	"io"
)

// textLimits bounds one message text.
type textLimits struct {
	maxMessage int64 // octets after dot-unstuffing, LF line endings
	maxHeader  int   // octets of header block, blank line included
}

// textResult says what readText found. The reasons for refusing a message
// are collected rather than acted on at once, because the text must in any
// case be read to its end: only then is the session back in step with the
// client (RFC 5321 §4.5.3.1.7 does the same for messages that are too big).
type textResult struct {
	header     []byte // the header block, LF endings, up to and including the blank line
	size       int64  // octets of the whole message after unstuffing
	tooBig     bool   // size passed maxMessage
	headerBig  bool   // the header block passed maxHeader
	bareLFDot  bool   // a line "." next to a bare LF: not the end, but suspicious
	bareCR     bool   // a CR not followed by LF
	nul        bool   // a NUL byte
	writeErr   error  // the body sink failed (staging disk full)
	terminated bool   // the real <CRLF>.<CRLF> was seen
}

// textSink receives a message text as readText reads it: the header block
// once it is complete (not when it is too large), then the body.
type textSink interface {
	// Header gets the whole header block, blank line included, before
	// any of the body. It is not called when the text has no blank line.
	Header(header []byte)
	io.Writer
}

// readText reads message text up to the line "." that ends it, undoing dot
// transparency, and writes the body (everything after the header block) to
// body. It returns an error only when reading from the client fails, in
// which case the session cannot go on.
//
// The rules, where RFC 1204 leaves them to RFC 821:
//   - The text ends only at <CRLF>.<CRLF>: a "." line whose own line ending,
//     or the previous line's, is a bare LF does not end it (that ambiguity
//     is what SMTP smuggling exploits, CVE-2023-51764); such a message is
//     read on to the real end and refused.
//   - Every line that starts with "." loses that one dot (RFC 821 §4.5.2).
//   - Lines are stored with LF endings, the local convention of sendmail
//     and maildir; a line ending in a bare LF is taken as a line too.
//   - A bare CR or a NUL makes the message unacceptable (RFC 5322 §2.3 and
//     §3.5 allow neither); it is read to its end and refused.
func readText(r *bufio.Reader, lim textLimits, body textSink) (textResult, error) {
	var (
		res       textResult
		header    bytes.Buffer
		inHeader  = true
		lineStart = true
		prevBare  = false // the previous line ended in a bare LF
		pendingCR = false // the previous chunk ended in CR, its LF may come next
	)
	// emit stores one piece of the unstuffed message.
	emit := func(p []byte) {
		if len(p) == 0 {
			return
		}
		res.size += int64(len(p))
		if res.size > lim.maxMessage {
			res.tooBig = true
		}
		if res.tooBig || res.headerBig || res.writeErr != nil {
			return
		}
		if inHeader {
			if header.Len()+len(p) > lim.maxHeader {
				res.headerBig = true
				return
			}
			header.Write(p)
			return
		}
		if _, err := body.Write(p); err != nil {
			res.writeErr = err
		}
	}

	for {
		chunk, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return res, err
		}
		complete := err == nil

		if pendingCR {
			pendingCR = false
			if len(chunk) > 0 && chunk[0] == '\n' {
				// The CR held back from the last chunk and this LF
				// are one CRLF: the long line ends here.
				emit([]byte{'\n'})
				chunk = chunk[1:]
				prevBare, lineStart = false, true
				if len(chunk) == 0 {
					continue
				}
			} else {
				res.bareCR = true
				emit([]byte{'\r'})
			}
		}

		if lineStart && len(chunk) > 0 && chunk[0] == '.' {
			switch {
			case complete && string(chunk) == ".\r\n" && !prevBare:
				res.terminated = true
				res.header = header.Bytes()
				return res, nil
			case complete && (string(chunk) == ".\r\n" || string(chunk) == ".\n"):
				res.bareLFDot = true
			}
			chunk = chunk[1:] // dot transparency
		}

		if !complete {
			// A piece of a line longer than the read buffer.
			if n := len(chunk); n > 0 && chunk[n-1] == '\r' {
				pendingCR = true
				chunk = chunk[:n-1]
			}
			checkBytes(&res, chunk)
			emit(chunk)
			lineStart = false
			continue
		}

		// A whole line (or the last piece of one): normalise its ending
		// to LF in place, the bytes are ours until the next read.
		n := len(chunk)
		bare := n < 2 || chunk[n-2] != '\r'
		if !bare {
			chunk[n-2] = '\n'
			chunk = chunk[:n-1]
		}
		checkBytes(&res, chunk[:len(chunk)-1])
		emit(chunk)
		if inHeader && lineStart && len(chunk) == 1 {
			// The blank line, stored with the header, ends it.
			inHeader = false
			if !res.headerBig && !res.tooBig {
				body.Header(header.Bytes())
			}
		}
		prevBare, lineStart = bare, true
	}
}

// checkBytes flags a bare CR or a NUL in one line's content.
func checkBytes(res *textResult, content []byte) {
	if bytes.IndexByte(content, '\r') >= 0 {
		res.bareCR = true
	}
	if bytes.IndexByte(content, 0) >= 0 {
		res.nul = true
	}
}
