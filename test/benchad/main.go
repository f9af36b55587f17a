// Command benchad measures a directory's raw LDAP simple-bind rate over
// pooled TLS connections: each of -c clients opens one connection (ldaps://
// or ldap:// with StartTLS) and binds on it again and again for -d, as the
// bind pool of mppd's LDAP backend does. test/bench-ad.sh runs it against
// the test AD DC next to mppd's own login rate, so the two figures come
// from the same run on the same machine.
//
//	benchad -uri ldaps://127.0.0.1:636 -ca ca.pem -dn DN -password-file F -c 8 -d 10s
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

func main() {
	uri := flag.String("uri", "ldaps://127.0.0.1:636", "directory URI (loopback only)")
	caFile := flag.String("ca", "", "PEM file of the CA that signed the server certificate")
	dn := flag.String("dn", "", "bind name")
	pwFile := flag.String("password-file", "", "file whose first line is the password")
	clients := flag.Int("c", 1, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "how long to bind (at most 5m)")
	flag.Parse()
	if *dur <= 0 || *dur > 5*time.Minute || *clients < 1 || *clients > 256 {
		fail("-d must be 1ns..5m and -c 1..256")
	}
	if !strings.Contains(*uri, "://127.") && !strings.Contains(*uri, "://[::1]") && !strings.Contains(*uri, "://localhost") {
		fail("only a loopback directory may be measured: %s", *uri)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail("%v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("%s: no certificate", *caFile)
	}
	b, err := os.ReadFile(*pwFile)
	if err != nil {
		fail("%v", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	tcfg := &tls.Config{RootCAs: roots}

	conns := make([]*goldap.Conn, *clients)
	for i := range conns {
		c, err := goldap.DialURL(*uri, goldap.DialWithTLSConfig(tcfg))
		if err != nil {
			fail("dial: %v", err)
		}
		if strings.HasPrefix(*uri, "ldap://") {
			if err := c.StartTLS(tcfg); err != nil {
				fail("StartTLS: %v", err)
			}
		}
		c.SetTimeout(10 * time.Second)
		conns[i] = c
	}
	var ok, failed atomic.Int64
	stop := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := c.Bind(*dn, pw); err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	for _, c := range conns {
		c.Close()
	}
	fmt.Printf("raw binds: %d clients, %d binds in %.1fs: %.0f binds/s (%d failed)\n",
		*clients, ok.Load(), secs, float64(ok.Load())/secs, failed.Load())
	if ok.Load() == 0 {
		os.Exit(1)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchad: "+format+"\n", args...)
	os.Exit(2)
}
