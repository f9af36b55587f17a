// Command benchbare is the leanest MPP server we know how to write in Go,
// for one measurement only: how much CPU a server process must spend per
// session on this machine, whatever else it does or does not do. It
// answers the dialogue `mpp bench` speaks (greeting, USER, PASS, DATA,
// the message text, QUIT) with the replies mpp expects, checks no
// password, logs nothing, keeps no limits, and hands each message to
// /usr/sbin/sendmail -i -f SENDER -- RCPT run as one fixed account, the
// message in an anonymous memory file on stdin and the exit waited for in
// the network poller, as mppd's sendmail backend does. With -deliver=false
// it replies 250 without starting sendmail: then it costs only the
// connection and the dialogue.
//
// test/bench.sh runs it under `mpp bench --server-pid` next to mppd, so
// BENCHMARKS.md can say how far mppd's own CPU per session is above what
// any one-process Go server costs here. It is not a server for anything
// else: it listens on loopback only and believes every login.
//
//	benchbare -listen 127.0.0.1:PORT -account U -from ADDR [-deliver=false]
//
// Needs root to run sendmail as the account.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	account := flag.String("account", "", "local account sendmail runs as")
	from := flag.String("from", "", "envelope sender")
	deliver := flag.Bool("deliver", true, "start sendmail for each message")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fail(fmt.Errorf("-listen must be a loopback address and port, not %q", *listen))
	}
	var cred *syscall.Credential
	if *deliver {
		if *account == "" || *from == "" || strings.HasPrefix(*from, "-") {
			fail(fmt.Errorf("-account and -from are needed to deliver"))
		}
		u, err := osuser.Lookup(*account)
		if err != nil {
			fail(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		go serve(c, cred, *from)
	}
}

// serve runs one session. Every command gets the reply mpp bench expects;
// RCPT comes from the message's To: field (mpp bench writes one).
func serve(c net.Conn, cred *syscall.Credential, from string) {
	defer c.Close()
	r := bufio.NewReader(c)
	c.Write([]byte("220 benchbare\r\n"))
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "USER", "PASS", "NOOP":
			c.Write([]byte("250 OK\r\n"))
		case "DATA":
			c.Write([]byte("354 go ahead\r\n"))
			msg, err := readText(r)
			if err != nil {
				return
			}
			if cred != nil {
				if err := sendmail(msg, cred, from); err != nil {
					c.Write([]byte("451 " + err.Error() + "\r\n"))
					continue
				}
			}
			c.Write([]byte("250 queued\r\n"))
		case "QUIT":
			c.Write([]byte("221 bye\r\n"))
			return
		default:
			c.Write([]byte("500 what\r\n"))
		}
	}
}

// readText reads message text up to the line ".", undoing dot stuffing.
func readText(r *bufio.Reader) ([]byte, error) {
	var msg bytes.Buffer
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if string(line) == ".\r\n" {
			return msg.Bytes(), nil
		}
		if line[0] == '.' {
			line = line[1:]
		}
		msg.Write(line)
	}
}

// sendmail runs sendmail as cred with msg on stdin and waits for it.
func sendmail(msg []byte, cred *syscall.Credential, from string) error {
	rcpt := ""
	for _, l := range strings.Split(string(msg), "\r\n") {
		if v, ok := strings.CutPrefix(l, "To: "); ok {
			rcpt = strings.TrimSpace(v)
			break
		}
	}
	if rcpt == "" || strings.HasPrefix(rcpt, "-") {
		return fmt.Errorf("no To: field")
	}
	fd, err := unix.MemfdCreate("benchbare", unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "message")
	defer f.Close()
	if _, err := f.Write(msg); err != nil {
		return err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	cmd := exec.Command("/usr/sbin/sendmail", "-i", "-f", from, "--", rcpt)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Start(); err != nil {
		return err
	}
	awaitExit(cmd.Process.Pid)
	return cmd.Wait()
}

// awaitExit waits in the network poller for pid to end, so that Wait,
// called next, does not block in waitid(2).
func awaitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		return err != nil || n > 0
	})
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchbare:", err)
	os.Exit(1)
}
