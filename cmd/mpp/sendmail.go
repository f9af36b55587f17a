package main

// mpp sendmail: the command line of /usr/sbin/sendmail, so that programs
// that hand mail to sendmail (cron, mailx, git send-email, mutt, PHP's
// mail()) post it through MPP instead. mpp(1) documents every flag; the
// decisions are in the comments below.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"

	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/mppclient"
	"github.com/mppd/mppd/internal/mppqueue"
)

// maxSendmailHeader bounds the header block mpp sendmail reads into memory
// before connecting (it must see all of it to compare recipients). mppd's
// own limit is smaller (100 KiB by default) and decides.
const maxSendmailHeader = 1 << 20

// sendmailArgs is a parsed sendmail command line.
type sendmailArgs struct {
	extract    bool // -t
	ignoreDots bool // -i, -oi: a line holding only "." is text, not the end
	verbose    bool // -v
	from       string
	fullName   string
	haveFrom   bool
	recipients []string
	notes      []string // options accepted but without effect, shown with -v
	mode       string   // "" (post a message), "bp" (list the queue), "q" (flush), "help"
	noQueue    bool     // --no-queue
}

// parseSendmailArgs reads the flags sendmail(8) programs use. mpp(1) has
// the table. Flags that tune a real MTA's delivery, error reporting or
// DSN, none of which MPP carries, are accepted and ignored (with a note
// under -v): scripts pass them by habit. -bp lists the queue and -q
// flushes it. Anything else, in particular the other modes (-bs, -bi,
// -bd, ...), queue-run variants (-q1h, -qR...) and options that name files
// (-C, -X), is refused, so a program never believes mpp did something it
// did not.
func parseSendmailArgs(args []string) (*sendmailArgs, error) {
	a := &sendmailArgs{}
	// value returns the argument of a flag: the rest of this word
	// ("-fbob@x") or the next word ("-f bob@x").
	value := func(i *int, flag string) (string, error) {
		w := args[*i]
		if len(w) > len(flag) {
			return w[len(flag):], nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs an argument", flag)
		}
		*i++
		return args[*i], nil
	}
	ignore := func(w, why string) {
		a.notes = append(a.notes, fmt.Sprintf("ignoring %s: %s", w, why))
	}
	for i := 0; i < len(args); i++ {
		w := args[i]
		if w == "--" {
			a.recipients = append(a.recipients, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			a.recipients = append(a.recipients, w)
			continue
		}
		switch {
		case w == "-h", w == "--help", w == "-help":
			a.mode = "help"
		case w == "--no-queue":
			a.noQueue = true
		case w == "-t":
			a.extract = true
		case w == "-i" || w == "-oi":
			a.ignoreDots = true
		case w == "-v":
			a.verbose = true
		case w == "-bm", w == "-odi", w == "-em", w == "-U":
			// -bm: deliver mail, the default mode. -odi: deliver
			// interactively, which is what MPP does anyway. -U:
			// "initial submission", which every MPP post is.
		case w == "-bp":
			a.mode = "bp"
		case w == "-q":
			a.mode = "q"
		case strings.HasPrefix(w, "-q"):
			return nil, fmt.Errorf("%s is not supported: mpp has no queue daemon; -q alone flushes the queue once (mpp flush)", w)
		case strings.HasPrefix(w, "-b"):
			return nil, fmt.Errorf("%s is not supported: mpp only posts messages (-bm), lists its queue (-bp) and flushes it (-q)", w)
		case strings.HasPrefix(w, "-f"), strings.HasPrefix(w, "-r"):
			v, err := value(&i, w[:2])
			if err != nil {
				return nil, err
			}
			a.from, a.haveFrom = v, true
		case strings.HasPrefix(w, "-F"):
			v, err := value(&i, "-F")
			if err != nil {
				return nil, err
			}
			a.fullName = v
		case w == "-odb", w == "-odq", w == "-odd",
			w == "-oem", w == "-oep", w == "-oeq", w == "-oew", w == "-oee",
			w == "-ep", w == "-eq", w == "-ew", w == "-ee",
			w == "-om", w == "-oo", w == "-os", w == "-m", w == "-n", w == "-G",
			w == "-Ac", w == "-Am":
			ignore(w, "MPP posts at once and reports errors by exit status")
		case strings.HasPrefix(w, "-B"), strings.HasPrefix(w, "-N"),
			strings.HasPrefix(w, "-R"), strings.HasPrefix(w, "-V"),
			strings.HasPrefix(w, "-L"):
			// Body type, DSN requests, the syslog tag: nothing in MPP
			// carries them.
			v, err := value(&i, w[:2])
			if err != nil {
				return nil, err
			}
			ignore(w[:2]+" "+v, "MPP has no such setting")
		default:
			return nil, fmt.Errorf("unknown option %s (mpp(1) lists the sendmail options mpp takes)", w)
		}
	}
	return a, nil
}

const sendmailUsage = `usage: mpp sendmail [-t] [-i] [-f addr] [-F name] [-v] [--no-queue] [--] [recipient ...]
       mpp sendmail -bp      list the queue (mpp queue)
       mpp sendmail -q       post the queued messages (mpp flush)

Posts the message on standard input as /usr/sbin/sendmail would, to the
recipients named, or with -t to those in To:, Cc: and Bcc:. Without -i or
-oi a line holding only "." ends the message. Settings come from the
environment (MPP_SERVER, MPP_USER, MPP_PASSWORD, ...) and the config file.
A message the server cannot take now is queued and mpp exits 0; switch
the queue off with --no-queue, MPP_QUEUE=off or "queue off" in the config
file. Other sendmail flags that change nothing here (-oem, -odi, -U,
-N never, ...) are accepted; mpp(1) has the table.
`

func (c *cli) sendmail(args []string) int {
	a, err := parseSendmailArgs(args)
	if err != nil {
		return c.errorf(exUsage, "%v", err)
	}
	if a.mode == "help" {
		fmt.Fprint(c.stdout, sendmailUsage)
		return exOK
	}
	if a.verbose {
		for _, n := range a.notes {
			fmt.Fprintf(c.stderr, "mpp: %s\n", n)
		}
	}
	cf := connFlags{verbose: a.verbose}
	if a.mode != "" && (len(a.recipients) > 0 || a.extract) {
		return c.errorf(exUsage, "-%s takes no recipients and no -t", a.mode)
	}
	switch a.mode {
	case "bp":
		return c.listQueue(&cf, "")
	case "q":
		return c.flushQueue(&cf, flushOptions{})
	}
	s, err := c.resolve(&cf)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	if a.noQueue {
		s.queue = false
	}
	opt, err := c.sessionOptions(s, a.verbose, "set "+envUser+" or user in the config file")
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}

	argRcpts, err := parseRecipientArgs(a.recipients)
	if err != nil {
		return c.errorf(exNoUser, "%v", err)
	}
	if !a.extract && len(argRcpts) == 0 {
		return c.errorf(exUsage, "no recipients: name them as arguments, or use -t to take them from the header")
	}

	// The whole header is read before connecting: the recipients must be
	// compared before anything is posted, and the server's idle timeout
	// must not run while a slow program writes.
	in := bufio.NewReaderSize(c.stdin, 64*1024)
	hdr, err := readSendmailHeader(in, a.ignoreDots)
	if err != nil {
		var he *headerError
		if errors.As(err, &he) {
			return c.errorf(exDataErr, "%v", err)
		}
		return c.errorf(exIOErr, "reading the message: %v", err)
	}

	headerRcpts, err := hdr.recipients()
	if err != nil {
		var rej *message.Rejection
		if errors.As(err, &rej) && rej.Reason == message.ReasonBadRecipient {
			return c.errorf(exNoUser, "the server would refuse the message: %s", rej.Text)
		}
		return c.errorf(exDataErr, "the server would refuse the message: %v", err)
	}

	// MPP takes the recipients from the header only (RFC 1204 §2.3), so
	// argument recipients the header does not name go in a Bcc: (or
	// Resent-Bcc: when the message is being resent), which the server
	// removes before delivery.
	var missing []string
	for _, r := range argRcpts {
		if !containsAddr(headerRcpts, r) && !containsAddr(missing, r) {
			missing = append(missing, r)
		}
	}
	if !a.extract {
		// Without -t, sendmail sends to the arguments only, whatever the
		// header says. The MPP server delivers to every header
		// recipient, so a header naming others would reach people the
		// caller did not list: refuse rather than send it.
		var extra []string
		for _, r := range headerRcpts {
			if !containsAddr(argRcpts, r) {
				extra = append(extra, r)
			}
		}
		if len(extra) > 0 {
			return c.errorf(exUsage, "the header names recipients not given as arguments (%s), and MPP would deliver to them too: use -t, or name them",
				strings.Join(extra, ", "))
		}
	} else if len(headerRcpts) == 0 && len(missing) == 0 {
		return c.errorf(exDataErr, "no recipients: no address in To:, Cc: or Bcc:, and none given as arguments")
	}
	if len(missing) > 0 {
		if hdr.resent {
			hdr.addResent("Resent-Bcc: " + strings.Join(missing, ", "))
		} else {
			hdr.add("Bcc: " + strings.Join(missing, ", "))
		}
	}

	// -f: the server decides the sender (it is the user who logs in);
	// a -f that is not the configured own address is reported, not
	// obeyed.
	if a.haveFrom && !(s.from != "" && address.Equal(a.from, s.from)) {
		fmt.Fprintf(c.stderr, "mpp: ignoring -f %s: the server sends as the user who logs in\n", a.from)
	}
	// -F: the full name for a From: the message lacks. Only with a known
	// own address (config "from", MPP_FROM); otherwise the server adds
	// the bare address.
	if a.fullName != "" && !hdr.has("from") {
		if s.from == "" {
			fmt.Fprintf(c.stderr, "mpp: ignoring -F: set from in the config file (or %s) so mpp can write a From: with the name\n", envFrom)
		} else {
			hdr.add("From: " + (&mail.Address{Name: a.fullName, Address: s.from}).String())
		}
	}

	password, err := c.getPassword(s)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	if err := mppclient.CheckLogin(s.user, password); err != nil {
		return c.errorf(exUsage, "%v", err)
	}
	var body io.Reader = in
	switch {
	case hdr.ended:
		body = strings.NewReader("")
	case !a.ignoreDots:
		body = &dotEndReader{r: in, lineStart: true}
	}
	if !s.queue {
		msg := io.MultiReader(bytes.NewReader(hdr.bytes()), body)
		if err := post(s, password, msg, opt); err != nil {
			return c.errorf(exitStatus(err), "%v", err)
		}
		return exOK
	}
	// A queued message may be posted twice (when the server's 250 is
	// lost with the connection); its own Message-ID lets the copies be
	// told apart, so it gets one now rather than one from the server
	// for each copy.
	if !hdr.has("message-id") {
		hdr.add("Message-ID: " + newMessageID())
	}
	meta := mppqueue.Meta{
		User:       s.user,
		Recipients: append(append([]string{}, headerRcpts...), missing...),
		FullName:   a.fullName,
	}
	if a.haveFrom {
		meta.From = a.from
	}
	msg := io.MultiReader(bytes.NewReader(hdr.bytes()), body)
	return c.queueAndPost(s, password, opt, meta, msg)
}

// parseRecipientArgs turns sendmail's recipient arguments into addresses.
// An argument may be a list ("a@x, b@y") or carry a display name ("Bob
// <bob@x>"). An address without a domain is refused: there is no local
// domain to qualify it with, and the server would refuse it anyway.
func parseRecipientArgs(args []string) ([]string, error) {
	var out []string
	for _, arg := range args {
		var addrs []string
		if list, err := mail.ParseAddressList(arg); err == nil {
			for _, a := range list {
				addrs = append(addrs, a.Address)
			}
		} else {
			addrs = []string{strings.TrimSpace(arg)}
		}
		for _, a := range addrs {
			canon, err := address.Parse(a)
			if err != nil {
				return nil, fmt.Errorf("recipient %s: %v", address.Quote(arg), err)
			}
			if !containsAddr(out, canon) {
				out = append(out, canon)
			}
		}
	}
	return out, nil
}

func containsAddr(list []string, a string) bool {
	for _, b := range list {
		if address.Equal(a, b) {
			return true
		}
	}
	return false
}

// headerError is a header mpp cannot post: EX_DATAERR.
type headerError struct{ msg string }

func (e *headerError) Error() string { return e.msg }

// sendmailHeader is the header block as read, line by line, with its line
// ends as they came (the wire conversion happens in mppclient).
type sendmailHeader struct {
	lines  []string // each with its line end, except perhaps the last
	sep    string   // the empty line that ended the header, "" if none
	body   string   // the first line of the body, when no empty line came first
	ended  bool     // the input ended inside the header (no body)
	resent bool     // a Resent-* field is present
}

// readSendmailHeader reads up to and including the empty line that ends
// the header. An mbox "From " line at the very start is dropped, as
// Postfix's sendmail does. A line that is not a header field (nor the
// continuation of one) ends the header too and is the first line of the
// body: `echo hi | sendmail bob@example.org` sends "hi" with a header mpp
// and the server add. Without -i a line holding only "." ends the whole
// input.
func readSendmailHeader(r *bufio.Reader, ignoreDots bool) (*sendmailHeader, error) {
	h := &sendmailHeader{}
	size := 0
	for first := true; ; first = false {
		line, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, err
		}
		size += len(line)
		if size > maxSendmailHeader {
			return nil, &headerError{fmt.Sprintf("the header is longer than %d octets", maxSendmailHeader)}
		}
		if !ignoreDots && (line == ".\n" || line == ".\r\n" || (line == "." && err == io.EOF)) {
			h.ended = true
			return h, nil
		}
		if line == "\n" || line == "\r\n" {
			h.sep = line
			return h, nil
		}
		if first && strings.HasPrefix(line, "From ") {
			line = ""
		}
		if line != "" && !isHeaderLine(line, len(h.lines) > 0) {
			h.body = line
			h.ended = err == io.EOF
			return h, nil
		}
		if line != "" {
			lower := strings.ToLower(line)
			if strings.HasPrefix(lower, "resent-") {
				h.resent = true
			}
			h.lines = append(h.lines, line)
		}
		if err == io.EOF {
			h.ended = true
			return h, nil
		}
	}
}

// has reports whether a field named name (lower case) is present.
func (h *sendmailHeader) has(name string) bool {
	for _, l := range h.lines {
		if n, _, ok := strings.Cut(l, ":"); ok && strings.ToLower(n) == name {
			return true
		}
	}
	return false
}

// add appends a field at the end of the header.
func (h *sendmailHeader) add(field string) {
	if n := len(h.lines); n > 0 && !strings.HasSuffix(h.lines[n-1], "\n") {
		h.lines[n-1] += "\n"
	}
	h.lines = append(h.lines, field+"\n")
}

// addResent puts a field at the top of the resent block, before the first
// Resent- field, so that the block stays one unbroken run (the server
// refuses Resent- fields that are not).
func (h *sendmailHeader) addResent(field string) {
	for i, l := range h.lines {
		if strings.HasPrefix(strings.ToLower(l), "resent-") {
			h.lines = slices.Insert(h.lines, i, field+"\n")
			return
		}
	}
	h.add(field)
}

func (h *sendmailHeader) bytes() []byte {
	var b bytes.Buffer
	for _, l := range h.lines {
		b.WriteString(l)
	}
	sep := h.sep
	switch {
	case strings.HasSuffix(h.body, "\r\n"):
		sep = "\r\n"
	case h.body != "", sep == "" && !h.ended:
		sep = "\n"
	}
	b.WriteString(sep)
	b.WriteString(h.body)
	return b.Bytes()
}

// isHeaderLine reports whether line is a header field (a name of
// printable ASCII other than ":", perhaps followed by blanks, then ":"),
// or, after the first field, a continuation line (starting with a blank).
func isHeaderLine(line string, afterField bool) bool {
	if afterField && (line[0] == ' ' || line[0] == '\t') {
		return true
	}
	name, _, ok := strings.Cut(line, ":")
	name = strings.TrimRight(name, " \t")
	if !ok || name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 33 || name[i] > 126 {
			return false
		}
	}
	return true
}

// recipients returns the addresses the server will deliver to, found by
// the server's own code (package message), so that mpp and mppd cannot
// disagree about them. A header without any recipient gives none and no
// error.
func (h *sendmailHeader) recipients() ([]string, error) {
	var b bytes.Buffer
	for _, l := range h.lines {
		l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	// The server's limit on recipients is the server's to apply.
	rcpts, err := message.Recipients(b.Bytes(), 1<<20)
	var rej *message.Rejection
	if errors.As(err, &rej) && rej.Reason == message.ReasonNoRecipients {
		return nil, nil
	}
	return rcpts, err
}

// dotEndReader passes its input through up to a line holding only "."
// (sendmail's end of input without -i), which it drops with everything
// after it. Lines of any length stream through.
type dotEndReader struct {
	r         *bufio.Reader
	pending   []byte
	lineStart bool
	done      bool
}

func (d *dotEndReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		if d.done {
			return 0, io.EOF
		}
		if d.lineStart {
			peek, _ := d.r.Peek(3)
			if isDotLine(string(peek)) {
				d.done = true
				return 0, io.EOF
			}
		}
		line, err := d.r.ReadSlice('\n')
		if len(line) > 0 {
			// ReadSlice's bytes are only good until the next read.
			d.pending = append(d.pending[:0], line...)
			d.lineStart = line[len(line)-1] == '\n'
		}
		switch {
		case err == io.EOF:
			d.done = true
		case err != nil && err != bufio.ErrBufferFull:
			return 0, err
		}
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// isDotLine reports whether the (up to) three bytes at the start of a line
// make it a line holding only ".": followed by LF, CRLF, or the end of the
// input.
func isDotLine(peek string) bool {
	return peek == "." || peek == ".\r" || strings.HasPrefix(peek, ".\n") || peek == ".\r\n"
}
