package main

// mpp bench: a load generator for MPP servers. It is bounded by design
// (a session count or a duration, both finite), checks every reply, and
// reports what a capacity plan needs: sessions and messages per second,
// the latency distribution of whole sessions, failures by reply, and,
// given the server's pid, its memory and CPU.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mppd/mppd/internal/mppclient"
)

// Bounds on the bench's own settings, so a typo cannot start an endless
// or absurd run.
const (
	benchMaxDuration    = time.Hour
	benchMaxConcurrency = 10_000
	benchMaxIdle        = 100_000
	benchMaxIdleLine    = 64 << 10
	benchMaxSize        = 1 << 30
	benchDialParallel   = 64 // idle sessions opened at once
)

// benchReport is what a run found. --json prints it as is.
type benchReport struct {
	Server      string  `json:"server"`
	TLS         bool    `json:"tls"`
	Concurrency int     `json:"concurrency"`
	PerSession  int     `json:"messages_per_session"`
	Size        int     `json:"message_size"`
	Elapsed     float64 `json:"elapsed_s"`

	Sessions       int     `json:"sessions"`
	SessionsOK     int     `json:"sessions_ok"`
	SessionsFailed int     `json:"sessions_failed"`
	Messages       int     `json:"messages"` // accepted with 250
	Octets         int64   `json:"octets"`   // of accepted messages, as read from the file (before CRLF conversion)
	SessionsPerSec float64 `json:"sessions_per_s"`
	MessagesPerSec float64 `json:"messages_per_s"`
	// DataMBps is the octets of accepted messages over the time spent
	// between sending DATA and the 250 after the text, summed over all
	// sessions: the speed of one DATA phase, whatever the concurrency.
	DataMBps float64 `json:"data_mb_per_s"`
	// Latency of whole sessions (connect to the reply to QUIT), in ms,
	// over successful sessions.
	LatencyMs latencies `json:"session_latency_ms"`
	// Errors counts failed sessions by what failed: "530 PASS" (a reply
	// and the step it answered), "connection dial", "protocol greeting".
	Errors map[string]int `json:"errors"`

	// Idle mode.
	Idle       int `json:"idle,omitempty"`
	IdleOpened int `json:"idle_opened,omitempty"`
	IdleLine   int `json:"idle_line_octets,omitempty"`

	// With --server-pid: the figures are summed over the processes given.
	ServerPID         int     `json:"server_pid,omitempty"`
	ServerPIDs        []int   `json:"server_pids,omitempty"`
	RSSBeforeKiB      int64   `json:"server_rss_before_kib,omitempty"`
	RSSAfterKiB       int64   `json:"server_rss_after_kib,omitempty"`
	RSSPerSessionKiB  float64 `json:"server_rss_per_idle_session_kib,omitempty"`
	ServerCPUms       float64 `json:"server_cpu_ms,omitempty"`
	ServerChildCPUms  float64 `json:"server_children_cpu_ms,omitempty"`
	ServerCPUPerSesMs float64 `json:"server_cpu_per_session_ms,omitempty"`
	// ServerChildCPUPerSesMs is the children's CPU per session.
	ServerChildCPUPerSesMs float64 `json:"server_children_cpu_per_session_ms,omitempty"`
}

type latencies struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type benchOptions struct {
	concurrency int
	count       int
	duration    time.Duration
	messages    int
	size        int
	to          string
	idle        int
	idleLine    int
	hold        time.Duration
	serverPIDs  pidList
	json        bool
}

// pidList is a --server-pid given once or more.
type pidList []int

func (l *pidList) String() string { return fmt.Sprint([]int(*l)) }

func (l *pidList) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return fmt.Errorf("not a process id: %q", v)
	}
	*l = append(*l, n)
	return nil
}

const benchUsage = `usage: mpp bench [options]

Drives an MPP server with concurrent sessions and reports rates, latencies
and errors; see mpp(1). Use it only on servers you run.

`

func (c *cli) bench(args []string) int {
	fs := flag.NewFlagSet("mpp bench", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf connFlags
	cf.register(fs)
	var o benchOptions
	fs.IntVar(&o.concurrency, "c", 1, "concurrent sessions")
	fs.IntVar(&o.count, "n", 0, "sessions in all (default 100 when -d is not given)")
	fs.DurationVar(&o.duration, "d", 0, "start sessions for this long (at most "+benchMaxDuration.String()+")")
	fs.IntVar(&o.messages, "m", 1, "messages per session (0: log in and QUIT only)")
	fs.IntVar(&o.size, "size", 1024, "size of each message in octets, header included")
	fs.StringVar(&o.to, "to", "", "recipient `address` of the messages (required with -m > 0)")
	fs.IntVar(&o.idle, "idle", 0, "instead of a load run, hold this many idle sessions (greeting read, nothing sent) and report the server's memory per session")
	fs.IntVar(&o.idleLine, "idle-line", 0, "with --idle, each session also sends this many `octets` of a command line and no line end (at most "+strconv.Itoa(benchMaxIdleLine)+")")
	fs.DurationVar(&o.hold, "hold", 2*time.Second, "with --idle, how long to hold the sessions open before measuring")
	fs.Var(&o.serverPIDs, "server-pid", "`pid` of the server on this machine, to report its RSS and CPU from /proc; repeat it for a server of several processes (mppd's monitor and engine), whose figures are summed")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	if st, done := c.parseFlags(fs, benchUsage, args); done {
		return st
	}
	if fs.NArg() > 0 {
		return c.errorf(exUsage, "bench takes no arguments, got %q", fs.Args())
	}
	switch {
	case o.concurrency < 1 || o.concurrency > benchMaxConcurrency:
		return c.errorf(exUsage, "-c must be 1 to %d", benchMaxConcurrency)
	case o.count < 0, o.messages < 0, o.size < 0 || o.size > benchMaxSize:
		return c.errorf(exUsage, "-n and -m must not be negative, --size 0 to %d", benchMaxSize)
	case o.duration < 0 || o.duration > benchMaxDuration:
		return c.errorf(exUsage, "-d must be at most %v", benchMaxDuration)
	case o.idle < 0 || o.idle > benchMaxIdle:
		return c.errorf(exUsage, "--idle must be 0 to %d", benchMaxIdle)
	case o.idleLine < 0 || o.idleLine > benchMaxIdleLine || (o.idleLine > 0 && o.idle == 0):
		return c.errorf(exUsage, "--idle-line must be 0 to %d, and only with --idle", benchMaxIdleLine)
	case o.idle == 0 && o.messages > 0 && o.to == "":
		return c.errorf(exUsage, "--to is required to send messages (or -m 0)")
	case o.hold <= 0 || o.hold > benchMaxDuration:
		return c.errorf(exUsage, "--hold must be positive and at most %v", benchMaxDuration)
	}
	if o.count == 0 && o.duration == 0 {
		o.count = 100
	}

	s, err := c.resolve(&cf)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	var trace io.Writer
	if cf.verbose {
		trace = &lockedWriter{w: c.stderr}
	}
	opt, err := s.clientOptions(trace)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	var password string
	if o.idle == 0 {
		if s.user == "" {
			return c.errorf(exUsage, "no user name: use -u, or set %s", envUser)
		}
		if password, err = c.getPassword(s); err != nil {
			return c.errorf(exitStatusOf(err), "%v", err)
		}
		if err := mppclient.CheckLogin(s.user, password); err != nil {
			return c.errorf(exUsage, "%v", err)
		}
	}

	var rep *benchReport
	if o.idle > 0 {
		rep, err = benchIdle(s, opt, o)
	} else {
		rep, err = benchLoad(s, password, opt, o)
	}
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	if o.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.write(c.stdout)
	}
	if rep.SessionsFailed > 0 {
		return 1
	}
	return exOK
}

// benchMessage builds a message of exactly size octets (LF line ends, as
// a local file would have; at least the header), addressed to to.
func benchMessage(to string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "To: %s\nSubject: mpp bench\n\n", to)
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 3)[:75] + "\n"
	for b.Len() < size {
		n := min(len(line), size-b.Len())
		chunk := line[:n]
		if n < len(line) && n > 0 {
			chunk = line[:n-1] + "\n"
		}
		b.WriteString(chunk)
	}
	return b.Bytes()
}

// sessionResult is one session's outcome.
type sessionResult struct {
	latency  time.Duration
	data     time.Duration
	messages int
	octets   int64
	err      error
}

func benchLoad(s *settings, password string, opt mppclient.Options, o benchOptions) (*benchReport, error) {
	msg := benchMessage(o.to, o.size)
	rep := &benchReport{
		Server: s.addr, TLS: s.tls, Concurrency: o.concurrency,
		PerSession: o.messages, Size: len(msg), Errors: map[string]int{},
	}
	if o.messages == 0 {
		rep.Size = 0
	}
	before := readProcs(o.serverPIDs)

	var (
		tickets  atomic.Int64 // sessions started, for -n
		mu       sync.Mutex
		results  []sessionResult
		wg       sync.WaitGroup
		deadline time.Time
	)
	start := time.Now()
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	more := func() bool {
		if o.count > 0 && tickets.Add(1) > int64(o.count) {
			return false
		}
		return deadline.IsZero() || time.Now().Before(deadline)
	}
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sessionResult
			for more() {
				local = append(local, benchSession(s, password, opt, msg, o.messages))
			}
			mu.Lock()
			results = append(results, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start).Seconds()
	after := readProcs(o.serverPIDs)

	var lat []float64
	var dataTime time.Duration
	for _, r := range results {
		rep.Sessions++
		rep.Messages += r.messages
		rep.Octets += r.octets
		dataTime += r.data
		if r.err != nil {
			rep.SessionsFailed++
			rep.Errors[errorKey(r.err)]++
			continue
		}
		rep.SessionsOK++
		lat = append(lat, float64(r.latency.Microseconds())/1000)
	}
	rep.LatencyMs = percentiles(lat)
	if rep.Elapsed > 0 {
		rep.SessionsPerSec = float64(rep.SessionsOK) / rep.Elapsed
		rep.MessagesPerSec = float64(rep.Messages) / rep.Elapsed
	}
	if dataTime > 0 {
		rep.DataMBps = float64(rep.Octets) / 1e6 / dataTime.Seconds()
	}
	rep.addProc(o.serverPIDs, before, after, rep.Sessions)
	return rep, nil
}

// benchSession runs one whole session and times it.
func benchSession(s *settings, password string, opt mppclient.Options, msg []byte, messages int) (r sessionResult) {
	start := time.Now()
	defer func() { r.latency = time.Since(start) }()
	cl, err := dialLogin(context.Background(), s, password, opt)
	if err != nil {
		r.err = err
		return r
	}
	defer cl.Close()
	for range messages {
		t := time.Now()
		err := cl.Send(bytes.NewReader(msg))
		r.data += time.Since(t)
		if err != nil {
			r.err = err
			cl.Quit()
			return r
		}
		r.messages++
		r.octets += int64(len(msg))
	}
	r.err = cl.Quit()
	return r
}

// errorKey names a failure for the report: the reply and the step it
// answered, or the kind of failure.
func errorKey(err error) string {
	var re *mppclient.ReplyError
	var pe *mppclient.ProtocolError
	var ce *mppclient.ConnError
	switch {
	case errors.As(err, &re):
		return strconv.Itoa(re.Reply.Code) + " " + re.Step
	case errors.As(err, &pe):
		return "protocol " + pe.Step
	case errors.As(err, &ce):
		return "connection " + ce.Step
	}
	return "other"
}

// percentiles of ms values (nearest rank), all zero for none.
func percentiles(v []float64) latencies {
	if len(v) == 0 {
		return latencies{}
	}
	sort.Float64s(v)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(v)))) - 1
		return v[max(i, 0)]
	}
	return latencies{P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: v[len(v)-1]}
}

// benchIdle opens o.idle sessions, reads each greeting, holds them for
// o.hold, measures the server and closes them.
func benchIdle(s *settings, opt mppclient.Options, o benchOptions) (*benchReport, error) {
	rep := &benchReport{Server: s.addr, TLS: s.tls, Idle: o.idle, IdleLine: o.idleLine, Errors: map[string]int{}}
	// With --idle-line, the start of a NOOP line the server must hold
	// until its end comes: NOOP and spaces, finished after the hold.
	partial := ""
	if o.idleLine > 0 {
		partial = ("NOOP" + strings.Repeat(" ", o.idleLine))[:o.idleLine]
	}
	before := readProcs(o.serverPIDs)
	start := time.Now()
	clients := make([]*mppclient.Client, o.idle)
	errs := make([]error, o.idle)
	took := make([]time.Duration, o.idle)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(benchDialParallel, o.idle) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.idle {
					return
				}
				t := time.Now()
				clients[i], errs[i] = mppclient.Dial(context.Background(), s.addr, opt)
				took[i] = time.Since(t)
				if errs[i] == nil && o.idleLine > 0 {
					if errs[i] = clients[i].SendRaw(partial); errs[i] != nil {
						clients[i].Close()
						clients[i] = nil
					}
				}
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start).Seconds()
	var lat []float64
	for i, err := range errs {
		rep.Sessions++
		if err != nil {
			rep.SessionsFailed++
			rep.Errors[errorKey(err)]++
			continue
		}
		rep.SessionsOK++
		lat = append(lat, float64(took[i].Microseconds())/1000)
	}
	// For idle sessions, "latency" is connect to greeting, and the rate
	// is of sessions opened.
	rep.LatencyMs = percentiles(lat)
	rep.IdleOpened = rep.SessionsOK
	if rep.Elapsed > 0 {
		rep.SessionsPerSec = float64(rep.SessionsOK) / rep.Elapsed
	}
	time.Sleep(o.hold)
	after := readProcs(o.serverPIDs)
	// Still there? A server that dropped idle sessions early would make
	// the memory figure meaningless.
	for i, cl := range clients {
		if cl == nil {
			continue
		}
		if i%max(1, o.idle/100) == 0 {
			if err := checkIdle(cl, partial); err != nil {
				rep.Errors["idle session lost: "+errorKey(err)]++
				rep.SessionsFailed++
				rep.SessionsOK--
			}
		}
		cl.Close()
	}
	rep.addProc(o.serverPIDs, before, after, 0)
	if rep.ServerPID > 0 && rep.IdleOpened > 0 {
		rep.RSSPerSessionKiB = float64(after.rssKiB-before.rssKiB) / float64(rep.IdleOpened)
	}
	return rep, nil
}

// checkIdle checks that an idle session is still there: NOOP gets a
// reply, or, after a partial line, its line end does (any code: a long
// line of spaces may be refused).
func checkIdle(cl *mppclient.Client, partial string) error {
	if partial == "" {
		return cl.Noop()
	}
	if err := cl.SendRaw("\r\n"); err != nil {
		return err
	}
	_, err := cl.Reply()
	return err
}

// procSample is what /proc says about the server at one moment.
type procSample struct {
	ok               bool
	rssKiB           int64
	cpu, childrenCPU time.Duration
}

// readProcs is readProc summed over pids; it is ok only when every one
// could be read.
func readProcs(pids []int) procSample {
	sum := procSample{ok: len(pids) > 0}
	for _, pid := range pids {
		p := readProc(pid)
		sum.ok = sum.ok && p.ok
		sum.rssKiB += p.rssKiB
		sum.cpu += p.cpu
		sum.childrenCPU += p.childrenCPU
	}
	return sum
}

// readProc reads VmRSS from /proc/PID/status and the CPU times from
// /proc/PID/stat (utime, stime, and cutime, cstime of waited-for
// children, in clock ticks of 1/100 s on Linux).
func readProc(pid int) procSample {
	if pid <= 0 {
		return procSample{}
	}
	var p procSample
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return p
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				p.rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p
	}
	// The command name (field 2) may hold spaces; fields are counted
	// after its closing parenthesis.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest) // f[0] is field 3 (state)
	if len(f) >= 15 {
		tick := func(s string) time.Duration {
			n, _ := strconv.ParseInt(s, 10, 64)
			return time.Duration(n) * 10 * time.Millisecond
		}
		p.cpu = tick(f[11]) + tick(f[12])         // utime, stime
		p.childrenCPU = tick(f[13]) + tick(f[14]) // cutime, cstime
	}
	p.ok = true
	return p
}

func (r *benchReport) addProc(pids []int, before, after procSample, sessions int) {
	if !before.ok || !after.ok {
		return
	}
	r.ServerPID = pids[0]
	if len(pids) > 1 {
		r.ServerPIDs = pids
	}
	r.RSSBeforeKiB = before.rssKiB
	r.RSSAfterKiB = after.rssKiB
	r.ServerCPUms = float64((after.cpu - before.cpu).Microseconds()) / 1000
	r.ServerChildCPUms = float64((after.childrenCPU - before.childrenCPU).Microseconds()) / 1000
	if sessions > 0 {
		r.ServerCPUPerSesMs = r.ServerCPUms / float64(sessions)
		r.ServerChildCPUPerSesMs = r.ServerChildCPUms / float64(sessions)
	}
}

// write prints the report for people.
func (r *benchReport) write(w io.Writer) {
	mode := "plain"
	if r.TLS {
		mode = "TLS"
	}
	if r.Idle > 0 {
		fmt.Fprintf(w, "mpp bench: %s (%s), %d idle sessions", r.Server, mode, r.Idle)
		if r.IdleLine > 0 {
			fmt.Fprintf(w, ", each holding %d octets of an unfinished line", r.IdleLine)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "opened:   %d of %d in %.2f s (%d failed): %.0f sessions/s\n",
			r.IdleOpened, r.Idle, r.Elapsed, r.SessionsFailed, r.SessionsPerSec)
		fmt.Fprintf(w, "greeting: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (connect to 220)\n",
			r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
	} else {
		fmt.Fprintf(w, "mpp bench: %s (%s), %d concurrent, %d message(s) of %d octets per session\n",
			r.Server, mode, r.Concurrency, r.PerSession, r.Size)
		fmt.Fprintf(w, "sessions: %d (%d ok, %d failed) in %.2f s: %.1f sessions/s\n",
			r.Sessions, r.SessionsOK, r.SessionsFailed, r.Elapsed, r.SessionsPerSec)
		fmt.Fprintf(w, "messages: %d accepted, %d octets: %.1f messages/s; DATA phase %.1f MB/s\n",
			r.Messages, r.Octets, r.MessagesPerSec, r.DataMBps)
		fmt.Fprintf(w, "latency:  p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (whole sessions)\n",
			r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors:   none")
	} else {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "errors:   %s\n", strings.Join(parts, ", "))
	}
	if r.ServerPID > 0 {
		if len(r.ServerPIDs) > 1 {
			fmt.Fprintf(w, "server:   pids %s (summed)", strings.Trim(fmt.Sprint(r.ServerPIDs), "[]"))
		} else {
			fmt.Fprintf(w, "server:   pid %d", r.ServerPID)
		}
		fmt.Fprintf(w, ", RSS %d KiB before, %d KiB after", r.RSSBeforeKiB, r.RSSAfterKiB)
		if r.Idle > 0 {
			fmt.Fprintf(w, ": %.1f KiB per idle session\n", r.RSSPerSessionKiB)
		} else {
			fmt.Fprintf(w, "; CPU %.0f ms own (%.3f ms per session), %.0f ms in children (%.3f ms per session)\n",
				r.ServerCPUms, r.ServerCPUPerSesMs, r.ServerChildCPUms, r.ServerChildCPUPerSesMs)
		}
	}
}

// lockedWriter serialises the traces of concurrent sessions line by line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
