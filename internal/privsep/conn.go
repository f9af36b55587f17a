package privsep

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// maxFDs is how many descriptors one received frame may carry before the
// kernel truncates the control data. Legitimate frames carry at most one.
const maxFDs = 4

// Pair creates the socketpair that joins monitor and engine: the monitor's
// end as a connection, the engine's end as a file to put in the engine's
// ExtraFiles (the monitor closes it once the engine has started).
func Pair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("privsep: socketpair: %w", err)
	}
	mf := os.NewFile(uintptr(fds[0]), "privsep-monitor")
	ef := os.NewFile(uintptr(fds[1]), "privsep-engine")
	mc, err := FileConn(mf)
	mf.Close()
	if err != nil {
		ef.Close()
		return nil, nil, err
	}
	return mc, ef, nil
}

// FileConn turns an inherited socketpair end into a connection. f is not
// closed; the connection has its own descriptor.
func FileConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("privsep: %s: %w", f.Name(), err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok || uc.LocalAddr().Network() != "unixpacket" {
		c.Close()
		return nil, fmt.Errorf("privsep: %s is not a SOCK_SEQPACKET unix socket", f.Name())
	}
	return uc, nil
}

// send writes one frame, with f's descriptor attached when f is not nil.
func send(c *net.UnixConn, b []byte, f *os.File) error {
	var oob []byte
	if f != nil {
		oob = unix.UnixRights(int(f.Fd()))
	}
	n, oobn, err := c.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return err
	}
	if n != len(b) || oobn != len(oob) {
		return errors.New("privsep: short write")
	}
	return nil
}

// packet is one received frame.
type packet struct {
	data      []byte
	fds       []int
	oversized bool // larger than MaxFrame; data is cut
	fdsCut    bool // more descriptors came than fit; the rest were lost
}

// closeFDs closes every descriptor that came with the packet.
func (p *packet) closeFDs() {
	for _, fd := range p.fds {
		unix.Close(fd)
	}
	p.fds = nil
}

// errHangup means the peer closed its end.
var errHangup = errors.New("privsep: peer closed the connection")

// errEmptyFrame means a zero-length frame arrived while the peer is still
// there (a read of zero octets is otherwise the end of the stream).
var errEmptyFrame = errors.New("privsep: empty frame")

// receive reads one frame into buf, which must hold MaxFrame+1 octets.
func receive(c *net.UnixConn, buf []byte) (packet, error) {
	oob := make([]byte, unix.CmsgSpace(maxFDs*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	var p packet
	if oobn > 0 {
		// Take the descriptors first, so that none leaks whatever
		// else is wrong with the frame.
		p.fds = parseRights(oob[:oobn])
	}
	if errors.Is(err, io.EOF) {
		p.closeFDs()
		if peerGone(c) {
			return p, errHangup
		}
		return p, errEmptyFrame
	}
	if err != nil {
		p.closeFDs()
		return p, err
	}
	p.data = buf[:n]
	p.oversized = n > MaxFrame || flags&unix.MSG_TRUNC != 0
	p.fdsCut = flags&unix.MSG_CTRUNC != 0
	return p, nil
}

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// peerGone reports whether the other end has closed, as opposed to having
// sent a frame of zero octets (which the net package also reports as EOF).
func peerGone(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	gone := true
	rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, err := unix.Poll(pfd, 0); err == nil {
			gone = n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLRDHUP) != 0
		}
	})
	return gone
}
