package main

// mpp send against the real engine (protocol.Server) with the development
// backends (password file, maildir) over loopback TCP, in-process: the
// round trip of awkward message files, and the exit status for each
// failure the real server produces. The scripted fake in send_test.go
// covers replies the real server cannot be made to give on demand.

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/delivery/deliverytest"
	"github.com/mppd/mppd/delivery/maildir"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testharness"
	"github.com/mppd/mppd/protocol"
)

const (
	realUser     = "alice"
	realPassword = "alice-test-password"
	realDomain   = "example.test"
)

// realServer serves protocol.Server on a loopback port until the test ends
// and returns its address and maildir root. deliver, if not nil, replaces
// the maildir backend.
func realServer(t *testing.T, deliver delivery.Deliverer) (addr, root string) {
	t.Helper()
	return serveReal(t, deliver, nil)
}

// realServerTLS is realServer speaking TLS from the first byte (mpps) with
// a fresh certificate for "mppd.test" (and 127.0.0.1); caFile is that
// certificate in PEM, for --ca-file.
func realServerTLS(t *testing.T) (addr, root, caFile string) {
	t.Helper()
	cert, err := testharness.SelfSigned("mppd.test")
	if err != nil {
		t.Fatal(err)
	}
	cfg, pemCert := cert.ServerConfig(), cert.CertPEM
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, root = serveReal(t, nil, func(c net.Conn) net.Conn { return tls.Server(c, cfg) })
	return addr, root, caFile
}

func serveReal(t *testing.T, deliver delivery.Deliverer, wrap func(net.Conn) net.Conn) (addr, root string) {
	t.Helper()
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if err := passwdfile.SetPassword(passwd, realUser, realPassword, nil); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	auth, err := passwdfile.New(config.Passwdfile{Path: passwd, MailDomain: realDomain}, log)
	if err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(dir, "maildir")
	if deliver == nil {
		md, err := maildir.New(config.Maildir{Root: root}, log)
		if err != nil {
			t.Fatal(err)
		}
		deliver = md
	}
	// mppd.conf's defaults, no failure delay.
	cfg := protocol.DefaultConfig()
	cfg.Hostname = "mppd.test"
	cfg.AuthFailureDelay = 0
	srv := &protocol.Server{Config: cfg, Auth: auth, Delivery: deliver, Log: log}

	ctx, cancel := context.WithCancel(context.Background())
	addr = testharness.Serve(t, func(conn net.Conn) {
		if wrap != nil {
			conn = wrap(conn)
		}
		srv.Serve(ctx, conn)
	})
	t.Cleanup(cancel) // runs first: the sessions end, then the listener
	return addr, root
}

// delivered returns the one message in the recipient's maildir, split into
// header block and body.
func delivered(t *testing.T, root, rcpt string) (header, body string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, rcpt, "new", "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("maildir of %s holds %q (%v), want one message", rcpt, files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	header, body, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		t.Fatalf("no header/body separator in %q", data)
	}
	return header, body
}

// The body delivered is the body of the file, whatever its line ends and
// dots: the client's stuffing and the server's unstuffing cancel out.
func TestSendRoundTripThroughMppd(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"LF file", "one\ntwo\n", "one\ntwo\n"},
		{"CRLF file", "one\r\ntwo\r\n", "one\ntwo\n"},
		{"last line without newline", "one\ntwo", "one\ntwo\n"},
		{"line that is only a dot", "one\n.\ntwo\n", "one\n.\ntwo\n"},
		{"dot line last, no newline", "one\n.", "one\n.\n"},
		{"leading dots", ".a\n..b\n...\n", ".a\n..b\n...\n"},
		{"CRLF.CRLF in a CRLF file", "one\r\n.\r\nQUIT\r\n", "one\n.\nQUIT\n"},
		{"empty lines", "\n\none\n\n", "\n\none\n\n"},
	}
	addr, root := realServer(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcpt := "rcpt" + string(rune('a'+i)) + "@" + realDomain
			nl := "\n"
			if strings.Contains(tc.body, "\r\n") {
				nl = "\r\n"
			}
			msg := "To: " + rcpt + nl + "Subject: " + tc.name + nl + nl + tc.body
			file := filepath.Join(t.TempDir(), "msg")
			if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
				t.Fatal(err)
			}
			c := newTestCLI("", map[string]string{"MPP_PASSWORD": realPassword})
			if st := c.run([]string{"send", "-s", addr, "-u", realUser, file}); st != exOK {
				t.Fatalf("status %d, stderr %q", st, c.stderr.String())
			}
			header, body := delivered(t, root, rcpt)
			if body != tc.want {
				t.Errorf("body %q, want %q", body, tc.want)
			}
			// The server, not the client, names the sender.
			if !strings.Contains(header, "\nFrom: "+realUser+"@"+realDomain+"\n") {
				t.Errorf("header without the authenticated From:\n%s", header)
			}
		})
	}
}

// Each failure of a real session: the line names the server's reply, the
// status is the sysexits.h one.
func TestSendFailuresThroughMppd(t *testing.T) {
	addr, _ := realServer(t, nil)
	tempAddr, _ := realServer(t, &deliverytest.Recorder{Err: delivery.Temporary("disk-full", errors.New("no space"))})
	permAddr, _ := realServer(t, &deliverytest.Recorder{Err: delivery.Permanent("refused", errors.New("no"))})
	good := "To: bob@" + realDomain + "\n\nhi\n"
	cases := []struct {
		name, addr, user, password, msg string
		status                          int
		prefix                          string
	}{
		{"wrong password", addr, realUser, "guess", good, exNoPerm,
			"mpp: server refused the password: 530 "},
		{"unknown user", addr, "mallory", "guess", good, exNoPerm,
			"mpp: server refused the password: 530 "},
		{"user name syntax", addr, "Alice", realPassword, good, exNoUser,
			"mpp: server refused the user name: 501 "},
		{"no recipients", addr, realUser, realPassword, "Subject: x\n\nhi\n", exDataErr,
			"mpp: server refused the message: 550 "},
		{"empty message", addr, realUser, realPassword, "", exDataErr,
			"mpp: server refused the message: 550 "},
		{"delivery temporarily failed", tempAddr, realUser, realPassword, good, exTempFail,
			"mpp: server refused the message: 451 "},
		{"delivery permanently failed", permAddr, realUser, realPassword, good, exDataErr,
			"mpp: server refused the message: 550 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCLI(tc.msg, map[string]string{"MPP_PASSWORD": tc.password})
			st := c.run([]string{"send", "-s", tc.addr, "-u", tc.user})
			if st != tc.status {
				t.Errorf("status %d, want %d", st, tc.status)
			}
			out := c.stderr.String()
			if !strings.HasPrefix(out, tc.prefix) || strings.Count(out, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", out, tc.prefix)
			}
		})
	}
}
