package message

import (
	"bytes"
	"strings"
	"testing"
)

// TestPassThrough checks that every field mppd does not own is delivered
// byte for byte and in order, after Received: and before the added fields.
func TestPassThrough(t *testing.T) {
	client := "Subject:   two  spaces \t\n" +
		"To: Bob <bob@example.com>,\n\t carol@example.com\n" +
		"X-8bit: caf\xc3\xa9 \xff\n" +
		"Return-Path: <whatever>\n" +
		"Content-Type: text/plain;\n  charset=utf-8\n" +
		"From: alice@example.com\n" +
		"Received: from elsewhere\n" +
		"X-Empty:\n" +
		"MIME-Version: 1.0\n"
	res := prepare(t, []byte(client+"\n"))
	fs := mustParse(t, res.Header)
	var got strings.Builder
	for _, f := range fs[1:] {
		if f.name == "date" || f.name == "message-id" {
			continue
		}
		got.WriteString(f.raw)
	}
	if got.String() != client {
		t.Errorf("client fields changed:\n got %q\nwant %q", got.String(), client)
	}
	if !bytes.HasPrefix(res.Header, []byte("Received: ")) || !bytes.Contains(res.Header, []byte("\n"+client)) {
		t.Errorf("client fields not contiguous after Received:\n%s", res.Header)
	}
}

// typicalHeader is about 2 KB, like a message from a desktop client; most
// of the Autocrypt key is filler.
var typicalHeader = []byte(`From: Alice Example <alice@example.com>
To: Bob Example <bob@example.com>, "Carol, from accounts" <carol@example.org>,
 dave@example.net
Cc: Erin <erin@example.com>, frank@example.com
Bcc: grace@example.com
Subject: Quarterly numbers and the plan for the offsite in
 December, with a few notes on the budget
Date: Wed, 25 Nov 2026 22:20:08 +0100
Message-ID: <c0ffee.12345@alice-laptop.example.com>
In-Reply-To: <beef.6789@mail.example.org>
References: <a1@mail.example.org> <a2@mail.example.org> <a3@mail.example.org>
 <a4@mail.example.org> <beef.6789@mail.example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="------------0123456789abcdef"
Content-Language: en-US
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101
 Thunderbird/128.5.0
X-Mailer: Example Mail 1.2.3
Organization: Example Corp.
Reply-To: Alice Example <alice@example.com>
Autocrypt: addr=alice@example.com; keydata=
 mDMEZbCdEhYJKwYBBAHaRw8BAQdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
 AAAAtBlBbGljZSA8YWxpY2VAZXhhbXBsZS5jb20+iJMEExYKADsWIQQAAAAAAAAAAAAAAAA
 AAAAAAAAAAAUCZbCdEgIbAwULCQgHAgIiAgYVCgkICwIEFgIDAQIeBwIXgAAKCRAAAAAAAAA
` + strings.Repeat(" "+strings.Repeat("A", 73)+"\n", 13) + ` AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
X-Priority: 3

`)

func TestTypicalHeader(t *testing.T) {
	res := prepare(t, typicalHeader)
	mustParse(t, res.Header)
	if len(res.Recipients) != 6 {
		t.Errorf("recipients = %q", res.Recipients)
	}
	if len(typicalHeader) < 1800 || len(typicalHeader) > 2400 {
		t.Errorf("typical header is %d octets, want about 2 KB", len(typicalHeader))
	}
}

func BenchmarkPrepare(b *testing.B) {
	tr, o := testTrace(), testOptions()
	b.SetBytes(int64(len(typicalHeader)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Prepare(typicalHeader, tr, o); err != nil {
			b.Fatal(err)
		}
	}
}
