package message_test

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mppd/mppd/internal/message"
)

// The engine's side of the contract: split the staged message, prepare the
// header, deliver Result.Header followed by the unchanged body.
func ExamplePrepare() {
	msg := []byte("From: The CEO <ceo@corp.example>\n" +
		"To: bob@example.com\n" +
		"Bcc: carol@example.com\n" +
		"Subject: hello\n" +
		"Message-ID: <1@alice-laptop.example.com>\n" +
		"\n" +
		"Hi Bob.\n")
	n, _ := message.HeaderLength(msg)
	header, body := msg[:n], msg[n:]

	opt := message.DefaultOptions()
	opt.Hostname = "mpp.example.net"
	tr := message.Trace{
		Login:     "alice",
		Addresses: []string{"alice@example.com"},
		Client:    "192.0.2.7",
		Session:   "k3x9",
		Time:      time.Date(2026, 11, 25, 22, 20, 8, 0, time.UTC),
	}
	res, err := message.Prepare(header, tr, opt)
	var rj *message.Rejection
	switch {
	case errors.As(err, &rj):
		fmt.Println("550", rj.Text, "reason="+rj.Reason)
		return
	case err != nil:
		fmt.Println("451 local error:", err)
		return
	}
	fmt.Println("recipients:", res.Recipients)
	fmt.Println("added:", res.Added, "removed:", res.Removed)
	os.Stdout.Write(res.Header)
	os.Stdout.Write(body)
	// Output:
	// recipients: [bob@example.com carol@example.com]
	// added: [Received Sender Date] removed: [Bcc]
	// Received: from [192.0.2.7]
	// 	by mpp.example.net (mppd) with MPP id k3x9
	// 	(authenticated user alice);
	// 	Wed, 25 Nov 2026 22:20:08 +0000
	// From: The CEO <ceo@corp.example>
	// To: bob@example.com
	// Subject: hello
	// Message-ID: <1@alice-laptop.example.com>
	// Sender: alice@example.com
	// Date: Wed, 25 Nov 2026 22:20:08 +0000
	//
	// Hi Bob.
}
