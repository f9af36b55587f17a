package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mppd/mppd/internal/config"
)

// TestActivationState: the cases of sd_listen_fds(3) in which mppd binds
// its configured addresses itself, and the one in which it takes sockets.
func TestActivationState(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, pid, fds string // "-": unset
		passed         bool
		why            string
	}{
		{"started by hand", "-", "-", false, "not socket-activated (no LISTEN_FDS)"},
		{"inherited from a parent", "1", "2", false, "LISTEN_PID=\"1\" is not this process"},
		{"no sockets", me, "0", false, "LISTEN_FDS=0"},
		{"garbage count", me, "two", false, "is not a count"},
		{"activated", me, "2", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range map[string]string{"LISTEN_PID": tc.pid, "LISTEN_FDS": tc.fds} {
				t.Setenv(k, "") // restored after the test
				if v == "-" {
					os.Unsetenv(k)
				} else {
					os.Setenv(k, v)
				}
			}
			passed, why := activationState()
			if passed != tc.passed || !strings.Contains(why, tc.why) {
				t.Errorf("got %v %q, want %v %q", passed, why, tc.passed, tc.why)
			}
		})
	}
}

// TestTakeActivationUnsets: whatever LISTEN_* say, they are gone after.
func TestTakeActivationUnsets(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "mpp")
	files, why := takeActivation()
	if files != nil || why == "" {
		t.Errorf("got %v %q", files, why)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s still set", k)
		}
	}
}

// namedFile duplicates f's descriptor under a new name, as
// activation.Files names the passed descriptors by LISTEN_FDNAMES.
func namedFile(t *testing.T, f *os.File, name string) *os.File {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// socketFile is namedFile for a socket: a named duplicate of its
// descriptor, the socket itself left open.
func socketFile(t *testing.T, s interface{ File() (*os.File, error) }, name string) *os.File {
	t.Helper()
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return namedFile(t, f, name)
}

func listenerFile(t *testing.T, name string) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return socketFile(t, l.(*net.TCPListener), name), l.Addr().String()
}

// TestFromActivation: sockets are mapped to roles by name; an unknown
// name, a connection, a datagram socket and a non-socket are refused with
// a message that says what to do.
func TestFromActivation(t *testing.T) {
	sd := config.Default().Systemd

	mpp, mppAddr := listenerFile(t, "mpp")
	mpps, _ := listenerFile(t, "mpps")
	metrics, _ := listenerFile(t, "metrics")
	set, err := fromActivation([]*os.File{mpp, mpps, metrics}, sd)
	if err != nil {
		t.Fatal(err)
	}
	defer set.close()
	if len(set.mpp) != 2 || roleOf(set.mpp[0]) != roleMPP || roleOf(set.mpp[1]) != roleMPPS || set.metrics == nil {
		t.Fatalf("set = %+v", set)
	}
	if set.mpp[0].Addr().String() != mppAddr || !set.hasTLS() {
		t.Errorf("mpp listener on %s, want %s", set.mpp[0].Addr(), mppAddr)
	}
	// The listener accepts: it is the passed socket.
	go func() {
		if c, err := net.Dial("tcp", mppAddr); err == nil {
			c.Close()
		}
	}()
	if c, err := set.mpp[0].Accept(); err != nil {
		t.Errorf("accept on the passed socket: %v", err)
	} else {
		c.Close()
	}

	unknown, _ := listenerFile(t, "LISTEN_FD_3")
	if _, err := fromActivation([]*os.File{unknown}, sd); err == nil ||
		!strings.Contains(err.Error(), `fd 3 is named "LISTEN_FD_3"`) || !strings.Contains(err.Error(), "FileDescriptorName=") {
		t.Errorf("unknown name: %v", err)
	}

	// A connected socket, as Accept=yes passes it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := fromActivation([]*os.File{socketFile(t, client.(*net.TCPConn), "mpp")}, sd); err == nil || !strings.Contains(err.Error(), "Accept=yes is not supported") {
		t.Errorf("connection: %v", err)
	}

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if _, err := fromActivation([]*os.File{socketFile(t, udp.(*net.UDPConn), "mpp")}, sd); err == nil || !strings.Contains(err.Error(), "not a stream socket") {
		t.Errorf("datagram: %v", err)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	defer pr.Close()
	if _, err := fromActivation([]*os.File{namedFile(t, pr, "mpp")}, sd); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("pipe: %v", err)
	}

	onlyMetrics, _ := listenerFile(t, "metrics")
	if _, err := fromActivation([]*os.File{onlyMetrics}, sd); err == nil || !strings.Contains(err.Error(), "no MPP socket") {
		t.Errorf("metrics only: %v", err)
	}
}
