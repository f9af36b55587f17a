package message

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mppd/mppd/internal/address"
)

var validReasons = map[string]bool{
	ReasonBadHeader: true, ReasonNoRecipients: true, ReasonTooManyRecipients: true,
	ReasonBadRecipient: true, ReasonMultipleFrom: true, ReasonFromNotYours: true,
	ReasonSenderNotYours: true, ReasonMailLoop: true, ReasonAddressTokens: true,
	ReasonSplitResent: true,
}

// FuzzPrepare feeds Prepare arbitrary messages and server-side values.
// Properties: it never panics; a refusal is a *Rejection with a known
// reason and a text safe for a reply line; on success the header parses as
// a header block, starts with one single-field Received:, has no Bcc:,
// exactly one From:, at most one Sender:, every client field it keeps is
// one the client sent, and every recipient is a valid address. The seed
// corpus is testdata/fuzz/FuzzPrepare; `go test` runs it.
func FuzzPrepare(f *testing.F) {
	f.Add([]byte("To: bob@example.com\n\nhi\n"), "alice", false)
	f.Add(typicalHeader, "alice", true)
	f.Fuzz(func(t *testing.T, msg []byte, server string, reject bool) {
		n, _ := HeaderLength(msg)
		header := msg[:n]
		tr := Trace{
			Login:     server,
			Addresses: []string{"alice@example.com", "a.smith@example.org", server},
			Client:    server,
			Session:   server,
			Time:      testTime,
		}
		o := testOptions()
		o.MaxRecipients = 20
		o.MaxReceived = 5
		o.MaxAddressTokens = 500
		if reject {
			o.Sender = Reject
		}
		res, err := Prepare(header, tr, o)
		if err != nil {
			var rj *Rejection
			if !errors.As(err, &rj) {
				t.Fatalf("non-Rejection error for client input: %v", err)
			}
			if !validReasons[rj.Reason] {
				t.Fatalf("unknown reason %q", rj.Reason)
			}
			checkText(t, rj.Text)
			return
		}
		fs := mustParse(t, res.Header)
		// A last line without LF is delivered with one; copy, never
		// append to msg's array.
		headerNL := append(bytes.Clone(header), '\n')
		// Received: is one field whatever the server values hold.
		if fs[0].name != "received" || bytes.Count([]byte(fs[0].raw), []byte("\n")) > 4 {
			t.Fatalf("Received: is not one field: %q", fs[0].raw)
		}
		for _, f := range fs {
			for i := 0; i < len(f.raw); i++ {
				if f.raw[i] == 0 || f.raw[i] == '\r' {
					t.Fatalf("delivered field has NUL or CR: %q", f.raw)
				}
			}
			switch f.name {
			case "received", "from", "sender", "date", "message-id", "resent-from", "resent-sender":
				// may be generated
			default:
				if !bytes.Contains(headerNL, []byte(f.raw)) {
					t.Fatalf("delivered field %q is not one the client sent", f.raw)
				}
			}
		}
		if len(res.Recipients) == 0 || len(res.Recipients) > o.MaxRecipients {
			t.Fatalf("%d recipients", len(res.Recipients))
		}
		for _, r := range res.Recipients {
			if err := address.Valid(r); err != nil {
				t.Fatalf("recipient %q: %v", r, err)
			}
		}
	})
}
