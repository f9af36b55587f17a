package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSendmailArgs(t *testing.T) {
	cases := []struct {
		args []string
		want sendmailArgs
		err  string
	}{
		{[]string{"bob@x.test"}, sendmailArgs{recipients: []string{"bob@x.test"}}, ""},
		{[]string{"-t", "-i"}, sendmailArgs{extract: true, ignoreDots: true}, ""},
		{[]string{"-oi", "-bm", "-odi", "-U", "-em", "a@x.test"}, sendmailArgs{ignoreDots: true, recipients: []string{"a@x.test"}}, ""},
		{[]string{"-f", "me@x.test", "-Fme too", "a@x.test"}, sendmailArgs{from: "me@x.test", haveFrom: true, fullName: "me too", recipients: []string{"a@x.test"}}, ""},
		{[]string{"-fme@x.test", "-F", "Me", "-v"}, sendmailArgs{from: "me@x.test", haveFrom: true, fullName: "Me", verbose: true}, ""},
		{[]string{"-r", "me@x.test"}, sendmailArgs{from: "me@x.test", haveFrom: true}, ""},
		{[]string{"-i", "--", "-t", "b@x.test"}, sendmailArgs{ignoreDots: true, recipients: []string{"-t", "b@x.test"}}, ""},
		{[]string{"-odb", "-oem", "a@x.test"}, sendmailArgs{recipients: []string{"a@x.test"}, notes: []string{
			"ignoring -odb: MPP posts at once and reports errors by exit status",
			"ignoring -oem: MPP posts at once and reports errors by exit status"}}, ""},
		{[]string{"-B", "8BITMIME", "-NFAILURE"}, sendmailArgs{notes: []string{
			"ignoring -B 8BITMIME: MPP has no such setting", "ignoring -N FAILURE: MPP has no such setting"}}, ""},
		// What cron, mailx, git send-email and mutt pass.
		{[]string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root@x.test"}, sendmailArgs{fullName: "CronDaemon", ignoreDots: true,
			recipients: []string{"root@x.test"}, notes: []string{"ignoring -B 8BITMIME: MPP has no such setting",
				"ignoring -oem: MPP posts at once and reports errors by exit status"}}, ""},
		{[]string{"-N", "never", "-L", "tag", "-Am", "-n", "-G", "a@x.test"}, sendmailArgs{recipients: []string{"a@x.test"}, notes: []string{
			"ignoring -N never: MPP has no such setting", "ignoring -L tag: MPP has no such setting",
			"ignoring -Am: MPP posts at once and reports errors by exit status", "ignoring -n: MPP posts at once and reports errors by exit status",
			"ignoring -G: MPP posts at once and reports errors by exit status"}}, ""},
		{[]string{"-bp"}, sendmailArgs{mode: "bp"}, ""},
		{[]string{"-q"}, sendmailArgs{mode: "q"}, ""},
		{[]string{"-v", "-q"}, sendmailArgs{mode: "q", verbose: true}, ""},
		{[]string{"-h"}, sendmailArgs{mode: "help"}, ""},
		{[]string{"--help"}, sendmailArgs{mode: "help"}, ""},
		{[]string{"--no-queue", "a@x.test"}, sendmailArgs{noQueue: true, recipients: []string{"a@x.test"}}, ""},
		{[]string{"-bs"}, sendmailArgs{}, "-bs is not supported: mpp only posts messages (-bm), lists its queue (-bp) and flushes it (-q)"},
		{[]string{"-bi"}, sendmailArgs{}, "-bi is not supported"},
		{[]string{"-bd"}, sendmailArgs{}, "-bd is not supported"},
		{[]string{"-q1h"}, sendmailArgs{}, "-q1h is not supported: mpp has no queue daemon"},
		{[]string{"-qRexample.org"}, sendmailArgs{}, "-qRexample.org is not supported"},
		{[]string{"-C", "/etc/x.cf"}, sendmailArgs{}, "unknown option -C"},
		{[]string{"-X", "/tmp/log"}, sendmailArgs{}, "unknown option -X"},
		{[]string{"-ox"}, sendmailArgs{}, "unknown option -ox"},
		{[]string{"-f"}, sendmailArgs{}, "-f needs an argument"},
	}
	for _, tc := range cases {
		got, err := parseSendmailArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.args, *got, tc.want)
		}
	}
}

// sendmailCLI runs mpp as "sendmail" (argv[0]) against addr.
func sendmailCLI(t *testing.T, addr, stdin string, env map[string]string, args ...string) (*testCLI, int) {
	t.Helper()
	e := map[string]string{"MPP_SERVER": addr, "MPP_USER": realUser, "MPP_PASSWORD": realPassword,
		"MPP_QUEUE_DIR": filepath.Join(t.TempDir(), "queue")}
	for k, v := range env {
		e[k] = v
	}
	c := newTestCLI(stdin, e)
	st := c.main(append([]string{"/usr/sbin/sendmail"}, args...))
	return c, st
}

// noMail checks that nothing was delivered at all.
func noMail(t *testing.T, root string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "*", "new", "*"))
	if len(files) != 0 {
		t.Errorf("delivered: %q", files)
	}
}

// Each sendmail flag against the real engine and maildir: who receives
// the message, what its header says, and the exit status.
func TestSendmailThroughMppd(t *testing.T) {
	d := "@" + realDomain
	type want struct {
		status   int
		rcpts    []string // each receives exactly one message
		body     string
		inHeader []string
		stderr   string // "" means empty
	}
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		input string
		want  want
	}{
		{"recipient in To", []string{"a1" + d}, nil, "To: a1" + d + "\nSubject: s\n\nhello\n",
			want{exOK, []string{"a1" + d}, "hello\n", []string{"To: a1" + d}, ""}},
		{"argument not in header goes to Bcc", []string{"-oi", "a2" + d, "hidden2" + d}, nil, "To: a2" + d + "\n\nhi\n",
			want{exOK, []string{"a2" + d, "hidden2" + d}, "hi\n", nil, ""}},
		{"no recipient header at all", []string{"--", "a3" + d}, nil, "Subject: only args\n\nbody\n",
			want{exOK, []string{"a3" + d}, "body\n", nil, ""}},
		{"-t takes the header", []string{"-t"}, nil, "To: a4" + d + "\nCc: b4" + d + "\n\nx\n",
			want{exOK, []string{"a4" + d, "b4" + d}, "x\n", nil, ""}},
		{"-t with an extra argument", []string{"-t", "-i", "c5" + d}, nil, "To: a5" + d + "\n\nx\n",
			want{exOK, []string{"a5" + d, "c5" + d}, "x\n", nil, ""}},
		{"without -i a dot line ends the input", []string{"a6" + d}, nil, "To: a6" + d + "\n\nbefore\n.\nafter\n",
			want{exOK, []string{"a6" + d}, "before\n", nil, ""}},
		{"-i keeps dot lines", []string{"-i", "a7" + d}, nil, "To: a7" + d + "\n\nbefore\n.\nafter\n..\n",
			want{exOK, []string{"a7" + d}, "before\n.\nafter\n..\n", nil, ""}},
		{"-oi, CRLF input, no final newline", []string{"-oi", "a8" + d}, nil, "To: a8" + d + "\r\n\r\none\r\n.\r\ntwo",
			want{exOK, []string{"a8" + d}, "one\n.\ntwo\n", nil, ""}},
		{"-f matching the own address is silent", []string{"-f", realUser + d, "a9" + d}, map[string]string{"MPP_FROM": realUser + d},
			"To: a9" + d + "\n\nx\n", want{exOK, []string{"a9" + d}, "x\n", []string{"From: " + realUser + d}, ""}},
		{"-f of someone else is ignored with a warning", []string{"-f", "boss" + d, "a10" + d}, nil,
			"To: a10" + d + "\n\nx\n", want{exOK, []string{"a10" + d}, "x\n", []string{"From: " + realUser + d},
				"mpp: ignoring -f boss" + d + ": the server sends as the user who logs in\n"}},
		{"-F names the From it adds", []string{"-F", "Alice Liddell", "a11" + d}, map[string]string{"MPP_FROM": realUser + d},
			"To: a11" + d + "\n\nx\n", want{exOK, []string{"a11" + d}, "x\n", []string{`From: "Alice Liddell" <` + realUser + d + ">"}, ""}},
		{"-F without a known address", []string{"-F", "Alice", "a12" + d}, nil,
			"To: a12" + d + "\n\nx\n", want{exOK, []string{"a12" + d}, "x\n", []string{"From: " + realUser + d},
				"mpp: ignoring -F: set from in the config file (or MPP_FROM) so mpp can write a From: with the name\n"}},
		{"-bm -odi and an ignored -odb", []string{"-bm", "-odi", "-odb", "-oem", "-Nnever", "-U", "a13" + d}, nil, "To: a13" + d + "\n\nx\n",
			want{exOK, []string{"a13" + d}, "x\n", nil, ""}},
		{"first line not a header starts the body", []string{"a18" + d}, nil, "hi there\nsecond: line\n",
			want{exOK, []string{"a18" + d}, "hi there\nsecond: line\n", []string{"From: " + realUser + d}, ""}},
		{"body after some header fields", []string{"-oi", "a19" + d}, nil, "Subject: s19\n  folded\nno header here\n\nx\n",
			want{exOK, []string{"a19" + d}, "no header here\n\nx\n", []string{"Subject: s19\n  folded"}, ""}},
		{"first line not a header, CRLF, no final newline", []string{"a20" + d}, nil, "hi there: you\r\nbody",
			want{exOK, []string{"a20" + d}, "hi there: you\nbody\n", nil, ""}},
		{"first line not a header, without -i a dot ends it", []string{"a21" + d}, nil, "hello\n.\nnot sent\n",
			want{exOK, []string{"a21" + d}, "hello\n", nil, ""}},
		{"mbox From_ line dropped", []string{"a14" + d}, nil, "From alice Thu Jan  1 00:00:00 2026\nTo: a14" + d + "\n\nx\n",
			want{exOK, []string{"a14" + d}, "x\n", nil, ""}},
		{"Resent- message gets Resent-Bcc", []string{"a15" + d, "r15" + d}, nil,
			"Resent-To: a15" + d + "\nTo: old15" + d + "\n\nx\n", want{exOK, []string{"a15" + d, "r15" + d}, "x\n", []string{"To: old15" + d}, ""}},
		{"split Resent- block refused", []string{"a18" + d}, nil,
			"Resent-Date: Thu, 3 Dec 2026 10:00:00 +0000\nX-Spacer: 1\nResent-To: a18" + d + "\n\nx\n", want{exDataErr, nil, "", nil,
				"mpp: the server would refuse the message: message rejected (split-resent): the Resent- fields must form one block, with no other field among them\n"}},
		{"Resent-Bcc stays inside the resent block", []string{"a19" + d, "r19" + d}, nil,
			"Received: from x by y; Thu, 3 Dec 2026 10:00:00 +0000\nResent-To: a19" + d + "\nTo: old19" + d + "\n\nx\n", want{exOK, []string{"a19" + d, "r19" + d}, "x\n", []string{"To: old19" + d}, ""}},
		{"address list and display name arguments", []string{"Bob <a16" + d + ">, b16" + d}, nil,
			"To: a16" + d + ", b16" + d + "\n\nx\n", want{exOK, []string{"a16" + d, "b16" + d}, "x\n", nil, ""}},
		{"case of the address does not matter", []string{"A17" + strings.ToUpper(d)}, nil,
			"To: a17" + d + "\n\nx\n", want{exOK, []string{"a17" + d}, "x\n", nil, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, root := realServer(t, nil)
			c, st := sendmailCLI(t, addr, tc.input, tc.env, tc.args...)
			if st != tc.want.status {
				t.Fatalf("status %d, want %d; stderr %q", st, tc.want.status, c.stderr.String())
			}
			if c.stderr.String() != tc.want.stderr {
				t.Errorf("stderr %q, want %q", c.stderr.String(), tc.want.stderr)
			}
			for _, r := range tc.want.rcpts {
				header, body := delivered(t, root, r)
				if body != tc.want.body {
					t.Errorf("%s: body %q, want %q", r, body, tc.want.body)
				}
				for _, h := range tc.want.inHeader {
					if !strings.Contains(header, "\n"+h+"\n") {
						t.Errorf("%s: header lacks %q:\n%s", r, h, header)
					}
				}
				// The Bcc mpp added (and any other) is gone.
				if strings.Contains(strings.ToLower(header), "bcc:") {
					t.Errorf("%s: Bcc delivered:\n%s", r, header)
				}
			}
			dirs, _ := filepath.Glob(filepath.Join(root, "*"))
			if len(dirs) != len(tc.want.rcpts) {
				t.Errorf("delivered to %q, want %q", dirs, tc.want.rcpts)
			}
		})
	}
}

// What mpp sendmail refuses, before anything is posted, and with which
// sysexits.h status.
func TestSendmailRefusals(t *testing.T) {
	d := "@" + realDomain
	addr, root := realServer(t, nil)
	cases := []struct {
		name, input string
		args        []string
		status      int
		stderr      string
	}{
		{"header names others than the arguments", "To: a" + d + ", other" + d + "\n\nx\n", []string{"a" + d}, exUsage,
			"mpp: the header names recipients not given as arguments (other" + d + "), and MPP would deliver to them too: use -t, or name them\n"},
		{"no recipients at all", "To: a" + d + "\n\nx\n", nil, exUsage,
			"mpp: no recipients: name them as arguments, or use -t to take them from the header\n"},
		{"-t without any recipient", "Subject: x\n\nx\n", []string{"-t"}, exDataErr,
			"mpp: no recipients: no address in To:, Cc: or Bcc:, and none given as arguments\n"},
		{"local name without domain", "To: root\n\nx\n", []string{"root"}, exNoUser,
			"mpp: recipient \"root\": "},
		{"unparsable header recipient", "To: <<broken\n\nx\n", []string{"-t"}, exNoUser,
			"mpp: the server would refuse the message: To: "},
		{"two From fields", "From: a" + d + "\nFrom: b" + d + "\nTo: a" + d + "\n\nx\n", []string{"-t"}, exDataErr,
			"mpp: server refused the message: 550 the message has 2 From: fields"},
		{"unknown option", "", []string{"-C", "/etc/mail/sendmail.cf"}, exUsage, "mpp: unknown option -C (mpp(1) lists the sendmail options mpp takes)\n"},
		{"queue daemon", "", []string{"-q1h"}, exUsage, "mpp: -q1h is not supported: mpp has no queue daemon; -q alone flushes the queue once (mpp flush)\n"},
		{"SMTP mode", "", []string{"-bs"}, exUsage, "mpp: -bs is not supported: mpp only posts messages (-bm), lists its queue (-bp) and flushes it (-q)\n"},
		{"-bp with recipients", "", []string{"-bp", "a" + d}, exUsage, "mpp: -bp takes no recipients and no -t\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, st := sendmailCLI(t, addr, tc.input, nil, tc.args...)
			if st != tc.status {
				t.Errorf("status %d, want %d", st, tc.status)
			}
			if !strings.HasPrefix(c.stderr.String(), tc.stderr) || strings.Count(c.stderr.String(), "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", c.stderr.String(), tc.stderr)
			}
		})
	}
	noMail(t, root)
}

// -v shows the dialogue with the password masked, the Bcc mpp adds is on
// the wire (and is the server's to strip), and "mpp sendmail" is the same
// as the binary called sendmail.
func TestSendmailVerboseAndWire(t *testing.T) {
	srv := fakeServer(t, nil)
	c := newTestCLI("To: a@x.test\n\nhi\n", map[string]string{
		"MPP_SERVER": srv.Addr(), "MPP_USER": "alice", "MPP_PASSWORD": "hunter2", "MPP_QUEUE": "off"})
	if st := c.run([]string{"sendmail", "-v", "-i", "a@x.test", "b@x.test"}); st != exOK {
		t.Fatalf("status %d: %q", st, c.stderr.String())
	}
	out := c.stderr.String()
	if !strings.Contains(out, "C: PASS ********\n") || strings.Contains(out, "hunter2") || !strings.Contains(out, "S: 221 ") {
		t.Errorf("trace:\n%s", out)
	}
	srv.Close()
	if got := string(srv.Sessions()[0].Texts[0]); got != "To: a@x.test\r\nBcc: b@x.test\r\n\r\nhi\r\n" {
		t.Errorf("wire text %q", got)
	}
}

// A password in a config file others may read stops sendmail mode too,
// with EX_CONFIG.
func TestSendmailConfigFile(t *testing.T) {
	addr, root := realServer(t, nil)
	host, port, _ := strings.Cut(addr, ":")
	cfg := "server " + host + "\nport " + port + "\nuser " + realUser + "\npassword " + realPassword + "\nfrom " + realUser + "@" + realDomain + "\n"
	path, env := writeConfigFile(t, cfg+"queue_dir "+filepath.Join(t.TempDir(), "q")+"\n", 0o600)
	c := newTestCLI("To: cf@"+realDomain+"\n\nx\n", env)
	if st := c.main([]string{"sendmail", "-F", "Alice", "-t"}); st != exOK {
		t.Fatalf("status %d: %q", st, c.stderr.String())
	}
	if header, _ := delivered(t, root, "cf@"+realDomain); !strings.Contains(header, "\nFrom: \"Alice\" <"+realUser+"@"+realDomain+">\n") {
		t.Errorf("header:\n%s", header)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	c = newTestCLI("To: cf2@"+realDomain+"\n\nx\n", env)
	if st := c.main([]string{"sendmail", "-t"}); st != exConfig || !strings.Contains(c.stderr.String(), "chmod 600") {
		t.Errorf("group-readable config: %d %q", st, c.stderr.String())
	}
}
