package proxyproto

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

var (
	src4 = netip.MustParseAddrPort("192.0.2.7:40000")
	dst4 = netip.MustParseAddrPort("198.51.100.1:218")
	src6 = netip.MustParseAddrPort("[2001:db8::7]:40000")
	dst6 = netip.MustParseAddrPort("[2001:db8::1]:218")
)

// TestReadValid: each valid header gives its addresses, and Read leaves
// the octets after it (the client's own data) unread.
func TestReadValid(t *testing.T) {
	tlv := []byte{0x04, 0x00, 0x03, 'a', 'b', 'c'} // PP2_TYPE_NOOP, skipped
	cases := []struct {
		name string
		in   []byte
		want Header
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 218\r\n"), Header{Version: 1, Source: src4, Destination: dst4}},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 218\r\n"), Header{Version: 1, Source: src6, Destination: dst6}},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Local: true}},
		{"v1 unknown with rest", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), Header{Version: 1, Local: true}},
		{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			Header{Version: 1, Source: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Destination: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}},
		{"v2 tcp4", AppendV2(nil, Header{Source: src4, Destination: dst4}, nil), Header{Version: 2, Source: src4, Destination: dst4}},
		{"v2 tcp6", AppendV2(nil, Header{Source: src6, Destination: dst6}, nil), Header{Version: 2, Source: src6, Destination: dst6}},
		{"v2 tcp4 with TLVs", AppendV2(nil, Header{Source: src4, Destination: dst4}, tlv), Header{Version: 2, Source: src4, Destination: dst4}},
		{"v2 local", AppendV2(nil, Header{Local: true}, nil), Header{Version: 2, Local: true}},
		{"v2 local with TLVs", AppendV2(nil, Header{Local: true}, tlv), Header{Version: 2, Local: true}},
		{"v2 unspec", append(append([]byte{}, v2Sig...), 0x21, 0x00, 0x00, 0x00), Header{Version: 2, Local: true}},
	}
	for _, c := range cases {
		after := []byte("\x16\x03\x01 client data")
		r := bytes.NewReader(append(append([]byte{}, c.in...), after...))
		got, err := Read(r)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
		rest := make([]byte, 64)
		n, _ := r.Read(rest)
		if !bytes.Equal(rest[:n], after) {
			t.Errorf("%s: left %q, want %q", c.name, rest[:n], after)
		}
	}
}

// TestReadInvalid: malformed, truncated, oversized and unsupported
// headers are refused.
func TestReadInvalid(t *testing.T) {
	v2 := func(verCmd, fam byte, payload []byte) []byte {
		b := append(append([]byte{}, v2Sig...), verCmd, fam)
		b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
		return append(b, payload...)
	}
	cases := map[string][]byte{
		"empty":             nil,
		"mpp command":       []byte("USER alice\r\n"),
		"tls":               []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
		"v1 no crlf":        []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 218\n"),
		"v1 truncated":      []byte("PROXY TCP4 192.0.2.7 198.51"),
		"v1 too long":       []byte("PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"),
		"v1 lowercase":      []byte("proxy TCP4 192.0.2.7 198.51.100.1 40000 218\r\n"),
		"v1 tcp4 with v6":   []byte("PROXY TCP4 2001:db8::7 198.51.100.1 40000 218\r\n"),
		"v1 tcp6 with v4":   []byte("PROXY TCP6 192.0.2.7 198.51.100.1 40000 218\r\n"),
		"v1 udp":            []byte("PROXY UDP4 192.0.2.7 198.51.100.1 40000 218\r\n"),
		"v1 port too big":   []byte("PROXY TCP4 192.0.2.7 198.51.100.1 65536 218\r\n"),
		"v1 port leading 0": []byte("PROXY TCP4 192.0.2.7 198.51.100.1 040000 218\r\n"),
		"v1 port sign":      []byte("PROXY TCP4 192.0.2.7 198.51.100.1 +4000 218\r\n"),
		"v1 double space":   []byte("PROXY TCP4  192.0.2.7 198.51.100.1 40000 218\r\n"),
		"v1 missing field":  []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n"),
		"v1 zone":           []byte("PROXY TCP6 fe80::1%eth0 2001:db8::1 40000 218\r\n"),
		"v1 stray cr":       []byte("PROXY TCP4 192.0.2.7\r198.51.100.1 40000 218\r\n"),
		"v1 unknownx":       []byte("PROXY UNKNOWNX\r\n"),
		"v2 bad sig":        append([]byte("\r\n\r\n\x00\r\nQUIX\n"), 0x21, 0x11, 0, 0),
		"v2 version 1":      v2(0x11, 0x11, make([]byte, 12)),
		"v2 command 2":      v2(0x22, 0x11, make([]byte, 12)),
		"v2 udp4":           v2(0x21, 0x12, make([]byte, 12)),
		"v2 unix":           v2(0x21, 0x31, make([]byte, 216)),
		"v2 tcp4 short":     v2(0x21, 0x11, make([]byte, 11)),
		"v2 tcp6 short":     v2(0x21, 0x21, make([]byte, 35)),
		"v2 too long":       v2(0x21, 0x11, make([]byte, MaxV2)),
		"v2 truncated":      v2(0x21, 0x11, make([]byte, 12))[:20],
	}
	for name, in := range cases {
		if h, err := Read(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted as %+v", name, h)
		}
	}
}

// TestAppendV1: the text form round-trips.
func TestAppendV1(t *testing.T) {
	for _, h := range []Header{{Version: 1, Source: src4, Destination: dst4}, {Version: 1, Source: src6, Destination: dst6}, {Version: 1, Local: true}} {
		got, err := Read(bytes.NewReader(AppendV1(nil, h)))
		if err != nil || got != h {
			t.Errorf("%+v: got %+v, %v", h, got, err)
		}
	}
}

// FuzzRead: no input panics Read or makes it read past the header, and
// a header it accepts encodes back to one that parses the same.
func FuzzRead(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 218\r\nUSER x\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 218\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendV2(nil, Header{Source: src4, Destination: dst4}, []byte{1, 0, 2, 'h', '2'}))
	f.Add(AppendV2(nil, Header{Source: src6, Destination: dst6}, nil))
	f.Add(AppendV2(nil, Header{Local: true}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(r)
		used := len(in) - r.Len()
		if used > MaxV2 {
			t.Fatalf("read %d octets", used)
		}
		if err != nil {
			return
		}
		if h.Version == 1 && (used > MaxV1 || in[used-1] != '\n') {
			t.Fatalf("v1 header of %d octets not ended by LF", used)
		}
		if h.Local {
			return
		}
		if !h.Source.IsValid() || !h.Destination.IsValid() {
			t.Fatalf("accepted %+v without addresses", h)
		}
		var again []byte
		if h.Version == 1 {
			again = AppendV1(nil, h)
		} else {
			again = AppendV2(nil, h, nil)
		}
		h2, err := Read(bytes.NewReader(again))
		if err != nil || h2 != h {
			t.Fatalf("%+v encodes to %q, which reads as %+v, %v", h, again, h2, err)
		}
	})
}
