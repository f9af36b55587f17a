//go:build integration

package ldap

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"mppd/internal/testenv"
)

// The test directory: see testdata/directory.ldif.
const (
	baseDN     = "dc=mppd,dc=test"
	rootDN     = "cn=admin,dc=mppd,dc=test"
	rootPW     = "admin-secret"
	serviceDN  = "cn=mppd,ou=services,dc=mppd,dc=test"
	servicePW  = "service-secret"
	postersDN  = "cn=posters,ou=groups,dc=mppd,dc=test"
	peopleBase = "ou=people,dc=mppd,dc=test"
)

// slapd is a private OpenLDAP server for one test: its own slapd.conf,
// database, TLS certificates (from a CA made for the test) and loopback
// ports, its "stats" log captured for the assertions, killed in Cleanup.
type slapd struct {
	t        testing.TB
	bin      string
	dir      string
	conf     string
	ldapURI  string // ldap:// (StartTLS offered)
	ldapsURI string
	caFile   string

	mu   sync.Mutex
	log  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
}

func findSbin(t testing.TB, name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return testenv.NeedCommand(t, "/usr/sbin/"+name)
}

func startSlapd(t testing.TB) *slapd {
	t.Helper()
	bin := findSbin(t, "slapd")
	slapadd := findSbin(t, "slapadd")
	dir := t.TempDir()
	s := &slapd{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "slapd.conf")}

	s.caFile = filepath.Join(dir, "ca.pem")
	writeTestPKI(t, dir)

	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	ldapPort, ldapsPort := freePort(t), freePort(t)
	s.ldapURI = fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort)
	s.ldapsURI = fmt.Sprintf("ldaps://127.0.0.1:%d", ldapsPort)

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
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(slapadd, "-f", s.conf, "-l", "testdata/directory.ldif").CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	s.start()
	t.Cleanup(s.stop)

	// The group goes in over LDAP so that the memberof overlay gives
	// alice her memberOf value.
	c := s.adminConn()
	defer c.Close()
	add := goldap.NewAddRequest(postersDN, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("cn", []string{"posters"})
	add.Attribute("member", []string{"uid=alice,ou=people,dc=mppd,dc=test"})
	if err := c.Add(add); err != nil {
		t.Fatalf("adding %s: %v", postersDN, err)
	}
	return s
}

// start runs slapd in the foreground (-d) so its stats log comes on stderr.
func (s *slapd) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command(s.bin, "-f", s.conf, "-h", s.ldapURI+"/ "+s.ldapsURI+"/", "-d", "stats")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting slapd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	addr := strings.TrimPrefix(s.ldapURI, "ldap://")
	for i := 0; i < 200; i++ {
		select {
		case <-done:
			t.Fatalf("slapd exited at start:\n%s", s.Log())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("slapd does not listen on %s after 5 s:\n%s", addr, s.Log())
}

// stop terminates slapd and waits for it (slapd shuts down cleanly on
// SIGTERM, closing every client connection).
func (s *slapd) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
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
func (s *slapd) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

var (
	acceptRE = regexp.MustCompile(`conn=(\d+) fd=\d+ ACCEPT from`)
	bindRE   = regexp.MustCompile(`conn=\d+ op=\d+ BIND dn="([^"]*)" method=`) // one line per request
)

// accepts counts the connections slapd accepted so far.
func (s *slapd) accepts() int { return len(acceptRE.FindAllString(s.Log(), -1)) }

// binds counts the BIND requests slapd logged for dn (case-insensitive).
func (s *slapd) binds(dn string) int {
	n := 0
	for _, m := range bindRE.FindAllStringSubmatch(s.Log(), -1) {
		if strings.EqualFold(m[1], dn) {
			n++
		}
	}
	return n
}

// allBinds counts every BIND request logged.
func (s *slapd) allBinds() int { return len(bindRE.FindAllString(s.Log(), -1)) }

func (s *slapd) adminConn() *goldap.Conn {
	s.t.Helper()
	c, err := goldap.DialURL(s.ldapURI)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Bind(rootDN, rootPW); err != nil {
		s.t.Fatal(err)
	}
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI makes a CA and a server certificate for 127.0.0.1 and
// ldap.mppd.test in dir: ca.pem, server.pem, server.key (PKCS #8).
// Nothing is committed; every run has fresh keys.
func writeTestPKI(t testing.TB, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mppd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "ldap.mppd.test"},
		DNSNames:     []string{"ldap.mppd.test", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "PRIVATE KEY", keyDER)
}
