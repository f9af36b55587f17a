package address

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name, in, want string // want "" means refused
	}{
		// Ordinary addresses.
		{"plain", "alice@example.com", "alice@example.com"},
		{"apostrophe", "o'brien@example.com", "o'brien@example.com"},
		{"plus tag, subdomain", "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"},
		{"dots in local part", "first.last@example.com", "first.last@example.com"},
		{"domain lower-cased, local kept", "Alice@Example.COM", "Alice@example.com"},
		{"single-label domain", "root@localhost", "root@localhost"},
		{"digits and hyphens", "x@a-1.b2.example", "x@a-1.b2.example"},
		{"atext specials", "!#%&'*+=?^_{}~@example.com", "!#%&'*+=?^_{}~@example.com"},
		{"hyphen inside local part", "a-b@example.com", "a-b@example.com"},
		{"pipe inside local part", "a|b@example.com", "a|b@example.com"},
		{"64-octet local part", strings.Repeat("l", 64) + "@x.example", strings.Repeat("l", 64) + "@x.example"},
		{"63-octet label", "a@" + long63 + ".example", "a@" + long63 + ".example"},

		// Catalogue case 34: dash-leading recipients.
		{"34 -oQ option", "-oQ/tmp/q", ""},
		{"34 -oQ with X", "-oQ/tmp/q -X/tmp/pwn.log", ""},
		{"34 quoted -C (as net/mail unquotes it)", "-C/tmp/evil.cf@example.com", ""},
		{"34 quoted -C (raw)", `"-C/tmp/evil.cf"@example.com`, ""},
		{"34 -bh", "-bh@example.com", ""},
		{"34 -t", "-t@x", ""},
		// Catalogue case 35: the PHPMailer payload, raw and as net/mail unquotes it.
		{"35 PHPMailer raw", `"attacker\" -oQ/tmp/ -X/var/www/x.php some"@email.com`, ""},
		{"35 PHPMailer unquoted", `attacker" -oQ/tmp/ -X/var/www/x.php some@email.com`, ""},
		// Catalogue case 36: shell metacharacters.
		{"36 semicolons and space", ";sleep 5;@x", ""},
		{"36 command substitution", "$(id)@x", ""},
		{"36 backticks", "`id`@x", ""},
		{"36 pipe", "|/bin/sh@x", ""},
		{"36 file", "/tmp/x@x", ""},
		// Catalogue case 39: expansion strings.
		{"39 Exim run", "${run{/bin/id}}@example.com", ""},
		{"39 Exim variable", "$local_part@x", ""},

		// Bytes that must never pass.
		{"space", "a b@example.com", ""},
		{"tab", "a\tb@example.com", ""},
		{"NUL", "a\x00b@example.com", ""},
		{"CR", "a\rb@example.com", ""},
		{"LF", "a\nb@example.com", ""},
		{"CRLF injection", "a@example.com\r\nBcc: x@y", ""},
		{"DEL", "a\x7fb@example.com", ""},
		{"non-ASCII local", "jos\u00e9@example.com", ""},
		{"non-ASCII domain", "a@exampl\u00e9.com", ""},
		{"control in domain", "a@exa\x01mple.com", ""},

		// Shape.
		{"empty", "", ""},
		{"no @", "alice", ""},
		{"empty local", "@example.com", ""},
		{"empty domain", "alice@", ""},
		{"two @", "a@b@example.com", ""},
		{"leading dot", ".a@example.com", ""},
		{"trailing dot", "a.@example.com", ""},
		{"double dot", "a..b@example.com", ""},
		{"quoted local part", `"a"@example.com`, ""},
		{"parenthesis", "a(b)@example.com", ""},
		{"angle brackets", "<a@example.com>", ""},
		{"comma", "a,b@example.com", ""},
		{"backslash", `a\b@example.com`, ""},
		{"65-octet local part", strings.Repeat("l", 65) + "@x.example", ""},
		{"64-octet label", "a@" + long63 + "a.example", ""},
		{"address literal v4", "a@[192.0.2.1]", ""},
		{"address literal v6", "a@[IPv6:2001:db8::1]", ""},
		{"domain trailing dot", "a@example.com.", ""},
		{"domain leading dot", "a@.example.com", ""},
		{"domain double dot", "a@example..com", ""},
		{"label leading hyphen", "a@-example.com", ""},
		{"label trailing hyphen", "a@example-.com", ""},
		{"underscore in domain", "a@ex_ample.com", ""},
		{"255-octet address", "a@" + strings.Repeat(long63+".", 3) + strings.Repeat("b", 61), ""},
		{"huge input", strings.Repeat("x", 1<<20) + "@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Parse(%s) = %q, want an error", Quote(tt.in), got)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T is not *Error", err)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error is %d octets long; it must not echo the input: %s", len(err.Error()), Quote(err.Error()))
				}
				if strings.ContainsAny(err.Error(), "\r\n\x00") {
					t.Errorf("error contains a control byte: %q", err.Error())
				}
				if Valid(tt.in) == nil {
					t.Errorf("Valid accepts what Parse refuses")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if Valid(tt.in) != nil {
				t.Errorf("Valid refuses what Parse accepts")
			}
		})
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"alice@example.com", "alice@EXAMPLE.com", true},
		{"Alice@example.com", "alice@example.com", true}, // documented choice
		{"alice@example.com", "alice@example.org", false},
		{"alice@example.com", "bob@example.com", false},
		{"alice@example.com", "alice@example.com.", false},
		{"-alice@example.com", "-alice@example.com", false}, // invalid never equal
		{"", "", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Equal(tt.b, tt.a); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestValidDomain(t *testing.T) {
	for _, d := range []string{"localhost", "mail.example.com", "a-b.example"} {
		if err := ValidDomain(d); err != nil {
			t.Errorf("ValidDomain(%q): %v", d, err)
		}
	}
	for _, d := range []string{"", "mail.example.com\r\nX: y", "a b", "[127.0.0.1]", "-a.example", "a..b", "a.example."} {
		if ValidDomain(d) == nil {
			t.Errorf("ValidDomain(%q) = nil, want an error", d)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("a\r\nb"); got != `"a\r\nb"` {
		t.Errorf("Quote = %s", got)
	}
	got := Quote(strings.Repeat("x", 1000))
	if len(got) != 64+2+3 || !strings.HasSuffix(got, `"...`) {
		t.Errorf("Quote of a long string = %s", got)
	}
	for _, s := range []string{strings.Repeat("\xd3", 100), strings.Repeat("\u2028", 100), strings.Repeat("\x00", 70)} {
		if got := Quote(s); len(got) > 69 || !strings.HasSuffix(got, `"...`) {
			t.Errorf("Quote(%.10q...) = %s (%d octets)", s, got, len(got))
		}
	}
	if got := Quote(strings.Repeat("a", 64)); got != `"`+strings.Repeat("a", 64)+`"` {
		t.Errorf("Quote of 64 octets = %s", got)
	}
}

// FuzzValid checks the property the delivery backends rely on: whatever
// Parse accepts can be put on a command line after "--" and into a file
// name without being read as an option or split by a control byte, and
// parsing is idempotent.
func FuzzValid(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "o'brien@example.com", "a+tag@sub.example.co.uk",
		"-t@x", `"-C/tmp/evil.cf"@example.com`, ";sleep 5;@x", "${run{/bin/id}}@example.com",
		"a@[192.0.2.1]", "Alice@EXAMPLE.com", "a\r\n@b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		canon, err := Parse(s)
		if err != nil {
			if len(err.Error()) > 200 {
				t.Fatalf("error too long: %d octets", len(err.Error()))
			}
			return
		}
		if canon[0] == '-' {
			t.Fatalf("valid address %q starts with '-'", canon)
		}
		for i := 0; i < len(canon); i++ {
			if c := canon[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				t.Fatalf("valid address %q contains byte %#x", canon, c)
			}
		}
		if len(canon) > MaxLength || strings.Count(canon, "@") != 1 {
			t.Fatalf("valid address %q has a bad shape", canon)
		}
		again, err := Parse(canon)
		if err != nil || again != canon {
			t.Fatalf("Parse is not idempotent: %q -> %q, %v", canon, again, err)
		}
		if !Equal(s, canon) {
			t.Fatalf("Equal(%q, its canonical form) = false", s)
		}
	})
}
