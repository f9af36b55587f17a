// Command benchfloor measures the floor under an MPP session with the
// production backends: what a PAM login costs on its own, what a sendmail
// submission costs on its own, and both in a row, each in a loop, through
// the very backend code mppd calls (authn/pam, delivery/sendmail) but
// without the protocol engine, the network or the daemon. test/bench.sh
// runs it next to `mpp bench` against mppd with the same backends, so the
// ratio shows what mppd adds. -what raw is the floor with the auth cache
// on, where no login costs anything: /usr/sbin/sendmail -i -f SENDER --
// RCPT run directly as the user, the message on a pipe, no backend code.
//
//	benchfloor -user U -password-file F -rcpt R [-service S] [-domain D]
//	           [-what login|sendmail|both|raw] [-n N] [-c C]
//
// Needs root (pam_unix reads /etc/shadow; sendmail runs as the user), a
// PAM service for the user, and a working /usr/sbin/sendmail. Build with
// -tags pam.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	osuser "os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/pam"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/delivery/sendmail"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/tomltype"
)

func main() {
	service := flag.String("service", "mppd-test", "PAM service")
	user := flag.String("user", "", "user to log in as (a local account, uid >= 1000)")
	pwFile := flag.String("password-file", "", "file whose first line is the password")
	domain := flag.String("domain", "mppd.test", "mail domain of the user's address")
	rcpt := flag.String("rcpt", "", "recipient of the test messages")
	what := flag.String("what", "both", "login, sendmail, both or raw")
	n := flag.Int("n", 100, "operations in all (at most 100000)")
	c := flag.Int("c", 1, "concurrent loops (at most 256)")
	flag.Parse()
	if *user == "" || *pwFile == "" || *rcpt == "" || *n < 1 || *n > 100000 || *c < 1 || *c > 256 {
		flag.Usage()
		os.Exit(64)
	}
	data, err := os.ReadFile(*pwFile)
	if err != nil {
		fail(err)
	}
	password, _, _ := strings.Cut(string(data), "\n")
	log := slog.New(slog.DiscardHandler)

	pcfg := config.DefaultPAM()
	pcfg.Service = *service
	pcfg.MailDomain = *domain
	pcfg.Workers = max(*c, 1)
	auth, err := pam.New(pcfg, log)
	if err != nil {
		fail(err)
	}
	scfg := config.DefaultSendmail()
	scfg.Timeout = tomltype.Duration(30 * time.Second)
	del, err := sendmail.New(scfg, log)
	if err != nil {
		fail(err)
	}
	msg := []byte(fmt.Sprintf("To: %s\nSubject: benchfloor\n\n%s", *rcpt,
		strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\n", 15)))
	ctx := context.Background()
	req := authn.Request{User: *user, Password: password, Client: "127.0.0.1"}
	id := authn.Identity{Login: *user, Addresses: []string{*user + "@" + *domain}, Account: *user}

	acct, err := osuser.Lookup(*user)
	if err != nil {
		fail(err)
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	raw := func() error {
		cmd := exec.Command("/usr/sbin/sendmail", "-i", "-f", id.Addresses[0], "--", *rcpt)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + acct.HomeDir, "USER=" + *user, "LOGNAME=" + *user}
		cmd.Stdin = bytes.NewReader(msg)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("sendmail: %w: %s", err, out)
		}
		return nil
	}
	op := func() error {
		if *what == "raw" {
			return raw()
		}
		ident := id
		if *what != "sendmail" {
			var err error
			if ident, err = auth.Authenticate(ctx, req); err != nil {
				return err
			}
		}
		if *what != "login" {
			env := delivery.Envelope{Sender: ident.Addresses[0], Recipients: []string{*rcpt}, Login: ident.Login, Account: ident.Account, Session: "benchfloor"}
			return del.Deliver(ctx, env, io.Reader(bytes.NewReader(msg)))
		}
		return nil
	}
	if err := op(); err != nil { // one to warm up, and to fail early
		fail(err)
	}

	var self0, kids0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids0)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				if err := op(); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var self1, kids1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids1)
	cpu := func(a, b syscall.Rusage) float64 {
		d := time.Duration(b.Utime.Nano()-a.Utime.Nano()) + time.Duration(b.Stime.Nano()-a.Stime.Nano())
		return float64(d.Microseconds()) / 1000 / float64(*n)
	}
	fmt.Printf("floor %s: %d in %.2f s with %d concurrent: %.1f/s, %.2f ms each; CPU per op %.2f ms own, %.2f ms children; %d errors\n",
		*what, *n, elapsed.Seconds(), *c, float64(*n)/elapsed.Seconds(),
		float64(elapsed.Microseconds())/1000/float64(*n)*float64(*c),
		cpu(self0, self1), cpu(kids0, kids1), errs.Load())
	if errs.Load() > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchfloor:", err)
	os.Exit(1)
}
