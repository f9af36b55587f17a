// Package ldaptest runs a private OpenLDAP server for tests: the
// integration tests of package ldap and the end-to-end tests of the daemon
// both use it. It needs slapd and slapadd (Debian package slapd, installed
// by test/setup.d/30-slapd.sh); when they are missing, Start stops the test
// through testenv.Missing (a failure under CI, a skip elsewhere).
package ldaptest

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// The test directory, directory.ldif plus the group Start adds.
const (
	BaseDN    = "dc=mppd,dc=test"
	RootDN    = "cn=admin,dc=mppd,dc=test"
	RootPW    = "admin-secret"
	ServiceDN = "cn=mppd,ou=services,dc=mppd,dc=test"
	ServicePW = "service-secret"
	PostersDN = "cn=posters,ou=groups,dc=mppd,dc=test" // members: alice
	GroupsDN  = "ou=groups,dc=mppd,dc=test"
)

//go:embed directory.ldif
var directoryLDIF []byte

// Server is a private OpenLDAP server for one test: its own slapd.conf,
// database, TLS certificates (from a CA made for the test) and loopback
// ports, its "stats" log captured for assertions, stopped in Cleanup.
type Server struct {
	t        testing.TB
	bin      string
	dir      string
	conf     string
	URI      string // ldap:// on 127.0.0.1 (StartTLS offered)
	LDAPSURI string // ldaps:// on 127.0.0.1
	CAFile   string // PEM of the CA that signed the server certificate
	// ClientCert and ClientKey are a client certificate and key (PEM)
	// signed by the same CA, for Options.RequireClientCert.
	ClientCert, ClientKey string

	proc testenv.Process
}

// Options change the server StartWith makes.
type Options struct {
	// RequireClientCert makes slapd demand a client certificate signed
	// by the test CA (TLSVerifyClient demand).
	RequireClientCert bool
	// IdleTimeout, when positive, makes slapd close connections idle for
	// that many seconds (idletimeout).
	IdleTimeout int
}

// Start starts a server loaded with directory.ldif and the group
// cn=posters, and stops it when the test ends. The server certificate is
// valid for 127.0.0.1, localhost and ldap.mppd.test.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin, slapadd := testenv.NeedSlapd(t)
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "slapd.conf")}

	s.CAFile = filepath.Join(dir, "ca.pem")
	s.ClientCert, s.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writeTestPKI(t, dir)
	ldif := filepath.Join(dir, "directory.ldif")
	if err := os.WriteFile(ldif, directoryLDIF, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(`# private slapd for mppd's authn/ldap tests
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/misc.schema
pidfile DIR/slapd.pid
argsfile DIR/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
TLSCACertificateFile DIR/ca.pem
TLSCertificateFile DIR/server.pem
TLSCertificateKeyFile DIR/server.key
EXTRA
database mdb
maxsize 33554432
suffix "dc=mppd,dc=test"
rootdn "cn=admin,dc=mppd,dc=test"
rootpw admin-secret
directory DIR/db
overlay memberof
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by * read
`, "DIR", dir)
	var extra []string
	if o.RequireClientCert {
		extra = append(extra, "TLSVerifyClient demand")
	}
	if o.IdleTimeout > 0 {
		extra = append(extra, fmt.Sprintf("idletimeout %d", o.IdleTimeout))
	}
	conf = strings.Replace(conf, "EXTRA\n", strings.Join(append(extra, ""), "\n"), 1)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(slapadd, "-f", s.conf, "-l", ldif).CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	// FreePort's ports were free a moment ago; another process (tests run
	// in parallel) may have taken one since. slapd then exits at start,
	// and it is tried again on new ports.
	t.Cleanup(s.Stop)
	for attempt := 1; ; attempt++ {
		s.URI = fmt.Sprintf("ldap://127.0.0.1:%d", FreePort(t))
		s.LDAPSURI = fmt.Sprintf("ldaps://127.0.0.1:%d", FreePort(t))
		err := s.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("slapd: %v; trying other ports", err)
	}

	// The group goes in over LDAP so that the memberof overlay gives
	// alice her memberOf value.
	c := s.adminConn()
	defer c.Close()
	add := goldap.NewAddRequest(PostersDN, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("cn", []string{"posters"})
	add.Attribute("member", []string{"uid=alice,ou=people,dc=mppd,dc=test"})
	if err := c.Add(add); err != nil {
		t.Fatalf("adding %s: %v", PostersDN, err)
	}
	return s
}

// Start (re)starts the server on the same ports and data, after Stop.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// errPortTaken is start's error when slapd could not listen on a port.
var errPortTaken = errors.New("a port is already in use")

// start runs slapd in the foreground (-d) so that its stats log comes on
// stderr, and waits until it serves both ports.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, "-f", s.conf, "-h", s.URI+"/ "+s.LDAPSURI+"/", "-d", "stats")
	logStart := len(s.Log())
	done, err := s.proc.Start(cmd)
	if err != nil {
		return fmt.Errorf("starting slapd: %v", err)
	}

	// Ready means the TLS port answers with a certificate of this
	// server's own CA. slapd listens on its ports one after the other and
	// exits when one is taken, so a connection to the first port alone
	// could reach a slapd about to exit, or another process.
	roots, err := testenv.CertPool(s.CAFile)
	if err != nil {
		return fmt.Errorf("reading the test CA: %v", err)
	}
	addr := strings.TrimPrefix(s.LDAPSURI, "ldaps://")
	tcfg := &tls.Config{RootCAs: roots}
	for i := 0; i < 400; i++ {
		select {
		case <-done:
			log := s.Log()
			if strings.Contains(log[min(logStart, len(log)):], "errno=98") {
				return fmt.Errorf("%w: slapd exited at start:\n%s", errPortTaken, log)
			}
			return fmt.Errorf("slapd exited at start:\n%s", log)
		default:
		}
		d := &net.Dialer{Timeout: time.Second}
		if c, err := tls.DialWithDialer(d, "tcp", addr, tcfg); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("slapd does not serve %s after 10 s:\n%s", s.LDAPSURI, s.Log())
}

// Stop terminates slapd and waits for it (slapd shuts down cleanly on
// SIGTERM, closing every client connection).
func (s *Server) Stop() {
	cmd, done := s.proc.Take()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Log returns slapd's log so far.
func (s *Server) Log() string { return s.proc.Log.String() }

var (
	acceptRE = regexp.MustCompile(`conn=(\d+) fd=\d+ ACCEPT from`)
	bindRE   = regexp.MustCompile(`conn=\d+ op=\d+ BIND dn="([^"]*)" method=`) // one line per request
)

// Accepts counts the connections slapd accepted so far.
func (s *Server) Accepts() int { return len(acceptRE.FindAllString(s.Log(), -1)) }

// Binds counts the BIND requests slapd logged for dn (case-insensitive).
func (s *Server) Binds(dn string) int {
	n := 0
	for _, m := range bindRE.FindAllStringSubmatch(s.Log(), -1) {
		if strings.EqualFold(m[1], dn) {
			n++
		}
	}
	return n
}

// AllBinds counts every BIND request logged.
func (s *Server) AllBinds() int { return len(bindRE.FindAllString(s.Log(), -1)) }

func (s *Server) adminConn() *goldap.Conn {
	s.t.Helper()
	c, err := goldap.DialURL(s.URI)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Bind(RootDN, RootPW); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI makes a CA, a server certificate for 127.0.0.1 and
// ldap.mppd.test and a client certificate in dir: ca.pem, server.pem,
// server.key, client.pem, client.key (keys in PKCS #8).
// Nothing is committed; every run has fresh keys.
func writeTestPKI(t testing.TB, dir string) {
	t.Helper()
	ca, err := testharness.NewCA("mppd test CA")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// issue makes a key and a certificate of tmpl signed by the CA, and
	// writes them as name.pem and name.key.
	issue := func(name string, tmpl *x509.Certificate) {
		cert, key, err := ca.Issue(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", cert)
		write(name+".key", key)
	}
	write("ca.pem", ca.CertPEM)
	issue("server", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "ldap.mppd.test"},
		DNSNames:    []string{"ldap.mppd.test", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	issue("client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "mppd test client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}
