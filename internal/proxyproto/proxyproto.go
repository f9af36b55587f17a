// Package proxyproto reads the header a load balancer puts in front of a
// proxied TCP connection: the PROXY protocol, version 1 (one text line)
// and version 2 (binary), as HAProxy specifies it in "The PROXY protocol"
// (doc/proxy-protocol.txt of the HAProxy sources).
//
// Read is strict: it reads exactly the header and nothing after it (the
// client's first bytes, a TLS ClientHello, stay in the connection), it
// accepts TCP over IPv4 and IPv6 only, and it bounds what it reads
// (MaxV1 octets for a text line, MaxV2 for a binary header). The TLVs of
// version 2 are skipped unread: nothing in them is trusted or needed.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Size limits. MaxV1 is the specification's longest version 1 line,
// CRLF included. MaxV2 bounds a version 2 header, its 16 fixed octets
// included: addresses take at most 36 octets, and the rest is TLVs,
// which balancers use sparingly.
const (
	MaxV1 = 107
	MaxV2 = 16 + 2048
)

// v2Sig is the 12-octet signature a version 2 header starts with.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1Prefix starts a version 1 header.
var v1Prefix = []byte("PROXY ")

// Header is what a PROXY protocol header says.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is true for a connection the balancer makes for itself (a
	// health check): version 2 LOCAL, an unspecified address family, or
	// version 1 UNKNOWN. Source and Destination are then not set, and
	// the connection's own addresses apply.
	Local bool
	// Source is the client's address and port; Destination is the
	// address and port the client connected to (on the balancer).
	Source, Destination netip.AddrPort
}

// ErrNotProxy is returned when the first octets are not a PROXY header
// of either version.
var ErrNotProxy = errors.New("not a PROXY protocol header")

// Read reads one PROXY header from r, and no octet more. An error says
// what was wrong; the connection should then be closed.
func Read(r io.Reader) (Header, error) {
	var start [6]byte
	if _, err := io.ReadFull(r, start[:]); err != nil {
		return Header{}, fmt.Errorf("reading the PROXY header: %w", err)
	}
	switch {
	case bytes.Equal(start[:], v1Prefix):
		return readV1(r)
	case bytes.Equal(start[:], v2Sig[:6]):
		return readV2(r)
	}
	return Header{}, ErrNotProxy
}

// readV1 reads the rest of a version 1 line after "PROXY ", one octet at
// a time so as not to read past its CRLF.
func readV1(r io.Reader) (Header, error) {
	line := make([]byte, 0, MaxV1)
	line = append(line, v1Prefix...)
	var b [1]byte
	for {
		if len(line) == MaxV1 {
			return Header{}, errors.New("PROXY v1 line longer than 107 octets")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("reading the PROXY header: %w", err)
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			break
		}
	}
	return ParseV1(line)
}

// ParseV1 parses a whole version 1 line, "PROXY " to CRLF.
func ParseV1(line []byte) (Header, error) {
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok || len(line) > MaxV1 {
		return Header{}, errors.New("PROXY v1 line not ended by CRLF within 107 octets")
	}
	body, ok = bytes.CutPrefix(body, v1Prefix)
	if !ok {
		return Header{}, ErrNotProxy
	}
	if bytes.HasPrefix(body, []byte("UNKNOWN")) && (len(body) == 7 || body[7] == ' ') {
		// The rest of the line, if any, is to be ignored.
		return Header{Version: 1, Local: true}, nil
	}
	if bytes.ContainsAny(body, "\r\n") {
		return Header{}, errors.New("PROXY v1 line has a stray CR or LF")
	}
	f := bytes.Split(body, []byte(" "))
	if len(f) != 5 {
		return Header{}, errors.New("PROXY v1 line does not have 5 fields")
	}
	var want4 bool
	switch string(f[0]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return Header{}, fmt.Errorf("PROXY v1 protocol %q is not TCP4, TCP6 or UNKNOWN", clip(f[0]))
	}
	src, err1 := parseV1Addr(f[1], f[3], want4)
	dst, err2 := parseV1Addr(f[2], f[4], want4)
	if err := errors.Join(err1, err2); err != nil {
		return Header{}, err
	}
	return Header{Version: 1, Source: src, Destination: dst}, nil
}

func parseV1Addr(addr, port []byte, want4 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(string(addr))
	if err != nil || a.Zone() != "" || a.Is4() != want4 {
		return netip.AddrPort{}, fmt.Errorf("PROXY v1 address %q is not a plain IPv%s address", clip(addr), map[bool]string{true: "4", false: "6"}[want4])
	}
	p, err := parsePort(port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, p), nil
}

// parsePort reads a decimal port, 0 to 65535, without sign or leading
// zero.
func parsePort(b []byte) (uint16, error) {
	bad := len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1)
	for _, c := range b {
		if c < '0' || c > '9' {
			bad = true
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if bad || err != nil {
		return 0, fmt.Errorf("PROXY v1 port %q is not a number from 0 to 65535", clip(b))
	}
	return uint16(n), nil
}

// readV2 reads the rest of a version 2 header after the first 6 octets
// of its signature.
func readV2(r io.Reader) (Header, error) {
	var fixed [16]byte
	copy(fixed[:], v2Sig[:6])
	if _, err := io.ReadFull(r, fixed[6:]); err != nil {
		return Header{}, fmt.Errorf("reading the PROXY header: %w", err)
	}
	if !bytes.Equal(fixed[:12], v2Sig) {
		return Header{}, ErrNotProxy
	}
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if 16+n > MaxV2 {
		return Header{}, fmt.Errorf("PROXY v2 header of %d octets, more than %d", 16+n, MaxV2)
	}
	buf := make([]byte, 16+n)
	copy(buf, fixed[:])
	if _, err := io.ReadFull(r, buf[16:]); err != nil {
		return Header{}, fmt.Errorf("reading the PROXY header: %w", err)
	}
	return ParseV2(buf)
}

// ParseV2 parses a whole version 2 header: the 16 fixed octets and the
// length they announce, no more and no less.
func ParseV2(buf []byte) (Header, error) {
	if len(buf) < 16 || !bytes.Equal(buf[:12], v2Sig) {
		return Header{}, ErrNotProxy
	}
	n := int(binary.BigEndian.Uint16(buf[14:16]))
	if len(buf) != 16+n || len(buf) > MaxV2 {
		return Header{}, fmt.Errorf("PROXY v2 header of %d octets, announced %d", len(buf), 16+n)
	}
	if buf[12]>>4 != 2 {
		return Header{}, fmt.Errorf("PROXY v2 version nibble %d, want 2", buf[12]>>4)
	}
	payload := buf[16:]
	switch buf[12] & 0x0f {
	case 0x0: // LOCAL: the balancer's own connection; addresses ignored
		return Header{Version: 2, Local: true}, nil
	case 0x1: // PROXY
	default:
		return Header{}, fmt.Errorf("PROXY v2 command %#x is neither LOCAL nor PROXY", buf[12]&0x0f)
	}
	switch buf[13] {
	case 0x00: // UNSPEC: use the connection's own addresses
		return Header{Version: 2, Local: true}, nil
	case 0x11: // TCP over IPv4
		return tcpAddresses(payload, 4, "TCP4")
	case 0x21: // TCP over IPv6
		return tcpAddresses(payload, 16, "TCP6")
	}
	return Header{}, fmt.Errorf("PROXY v2 address family %#x is not TCP over IPv4 or IPv6", buf[13])
}

// tcpAddresses reads the address block of a v2 TCP header: the source and
// destination addresses, size octets each, then their two ports.
func tcpAddresses(payload []byte, size int, family string) (Header, error) {
	if len(payload) < 2*size+4 {
		return Header{}, fmt.Errorf("PROXY v2 %s addresses cut short", family)
	}
	src, _ := netip.AddrFromSlice(payload[:size])
	dst, _ := netip.AddrFromSlice(payload[size : 2*size])
	ports := payload[2*size:]
	return Header{Version: 2,
		Source:      netip.AddrPortFrom(src, binary.BigEndian.Uint16(ports[0:2])),
		Destination: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(ports[2:4])),
	}, nil
}

// Looks reports whether b starts like a PROXY header of either version
// (at least 6 octets are needed to tell).
func Looks(b []byte) bool {
	return len(b) >= 6 && (bytes.Equal(b[:6], v1Prefix) || bytes.Equal(b[:6], v2Sig[:6]))
}

// AppendV1 appends h as a version 1 line (what a balancer sends).
func AppendV1(b []byte, h Header) []byte {
	if h.Local || !h.Source.IsValid() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	proto := "TCP6"
	if h.Source.Addr().Is4() {
		proto = "TCP4"
	}
	return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", proto, h.Source.Addr(), h.Destination.Addr(),
		h.Source.Port(), h.Destination.Port())
}

// AppendV2 appends h as a version 2 header, followed by the TLVs tlvs
// (already encoded; Read skips them).
func AppendV2(b []byte, h Header, tlvs []byte) []byte {
	b = append(b, v2Sig...)
	var addrs []byte
	switch {
	case h.Local:
		b = append(b, 0x20, 0x00)
	case h.Source.Addr().Is4():
		b = append(b, 0x21, 0x11)
		s, d := h.Source.Addr().As4(), h.Destination.Addr().As4()
		addrs = append(append(addrs, s[:]...), d[:]...)
	default:
		b = append(b, 0x21, 0x21)
		s, d := h.Source.Addr().As16(), h.Destination.Addr().As16()
		addrs = append(append(addrs, s[:]...), d[:]...)
	}
	if !h.Local {
		addrs = binary.BigEndian.AppendUint16(addrs, h.Source.Port())
		addrs = binary.BigEndian.AppendUint16(addrs, h.Destination.Port())
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)+len(tlvs)))
	return append(append(b, addrs...), tlvs...)
}

// clip shortens junk quoted in an error to 40 octets.
func clip(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}
