package testharness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Cert is a throwaway self-signed ECDSA certificate, its own CA.
type Cert struct {
	CertPEM []byte // the certificate, for a client to trust
	KeyPEM  []byte // the private key (PKCS #8)
	Leaf    *x509.Certificate
	TLS     tls.Certificate
}

// SelfSigned makes a certificate with common name and DNS name host, for
// the loopback addresses too, valid from an hour ago for a day.
func SelfSigned(host string) (*Cert, error) {
	der, key, err := newCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Cert{
		CertPEM: certToPEM(der),
		KeyPEM:  keyPEM,
		Leaf:    leaf,
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}, nil
}

// CA is a throwaway certificate authority, for tests that need
// certificates signed by a CA: a server's and a client's, say.
type CA struct {
	CertPEM []byte // the CA's certificate, for the other side to trust
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// NewCA makes a CA with common name cn, valid from an hour ago for a day.
func NewCA(cn string) (*CA, error) {
	der, key, err := newCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{CertPEM: certToPEM(der), cert: cert, key: key}, nil
}

// Issue makes a fresh key and a certificate of tmpl (its names and
// extended key usage) signed by the CA, valid from an hour ago for a day,
// and returns both in PEM (the key in PKCS #8).
func (ca *CA) Issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, key, err := newCert(tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certToPEM(der), keyPEM, nil
}

// newCert makes a fresh P-256 key and a certificate of tmpl for it with a
// random serial number, valid from an hour ago for a day, signed by
// parent and parentKey, or by itself when parent is nil.
func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (der []byte, key *ecdsa.PrivateKey, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	der, err = x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	return der, key, err
}

func certToPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ServerConfig is a TLS server configuration presenting the certificate.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS12}
}

// Pool is a certificate pool that trusts the certificate.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Leaf)
	return p
}

// WriteCert writes a fresh self-signed certificate with common name cn and
// its key into dir as cert.pem and key.pem and returns it and the paths.
// The files are written under temporary names and renamed, so a daemon
// reloading them never reads half a file (as an ACME client does it).
func WriteCert(t testing.TB, dir, cn string) (c *Cert, certFile, keyFile string) {
	t.Helper()
	c, err := SelfSigned(cn)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	WriteAtomic(t, certFile, c.CertPEM, 0o644)
	WriteAtomic(t, keyFile, c.KeyPEM, 0o600)
	return c, certFile, keyFile
}

// WriteAtomic writes data to path.tmp and renames it to path.
func WriteAtomic(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
