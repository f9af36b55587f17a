package main

import "testing"

// The default paths for every operating system mpp is built for, from any
// machine: the choice depends on the GOOS name and the environment only.
func TestDefaultPaths(t *testing.T) {
	cases := []struct {
		goos          string
		root          bool
		env           map[string]string
		config, queue string
	}{
		{"linux", false, map[string]string{"HOME": "/home/al"},
			"/home/al/.config/mpp/config", "/home/al/.local/state/mpp/queue"},
		{"linux", false, map[string]string{"HOME": "/home/al/", "XDG_CONFIG_HOME": "/cfg/", "XDG_STATE_HOME": "/st"},
			"/cfg/mpp/config", "/st/mpp/queue"},
		// A relative XDG directory is ignored, as the specification says.
		{"freebsd", false, map[string]string{"HOME": "/home/al", "XDG_CONFIG_HOME": "cfg", "XDG_STATE_HOME": "st"},
			"/home/al/.config/mpp/config", "/home/al/.local/state/mpp/queue"},
		{"linux", true, map[string]string{"HOME": "/root"},
			"/root/.config/mpp/config", "/var/spool/mpp/queue"},
		{"linux", false, map[string]string{}, "", ""},
		{"darwin", false, map[string]string{"HOME": "/Users/al"},
			"/Users/al/.config/mpp/config", "/Users/al/.local/state/mpp/queue"},
		{"darwin", true, map[string]string{"HOME": "/var/root"},
			"/var/root/.config/mpp/config", "/var/spool/mpp/queue"},
		{"windows", false, map[string]string{"APPDATA": `C:\Users\al\AppData\Roaming`, "LOCALAPPDATA": `C:\Users\al\AppData\Local\`, "HOME": "/ignored"},
			`C:\Users\al\AppData\Roaming\mpp\config`, `C:\Users\al\AppData\Local\mpp\queue`},
		// Windows has no root queue: an administrator has their own.
		{"windows", true, map[string]string{"APPDATA": `\\srv\profiles\al`, "LOCALAPPDATA": `D:/local`},
			`\\srv\profiles\al\mpp\config`, `D:/local\mpp\queue`},
		{"windows", false, map[string]string{"APPDATA": "relative", "HOME": "/home/al"}, "", ""},
	}
	for _, tc := range cases {
		p := platform{goos: tc.goos, root: tc.root, getenv: func(k string) string { return tc.env[k] }}
		if got := defaultConfigPath(p); got != tc.config {
			t.Errorf("%s root=%v %v: config %q, want %q", tc.goos, tc.root, tc.env, got, tc.config)
		}
		if got := defaultQueueDir(p); got != tc.queue {
			t.Errorf("%s root=%v %v: queue %q, want %q", tc.goos, tc.root, tc.env, got, tc.queue)
		}
	}
}

func TestIsSendmailName(t *testing.T) {
	for name, want := range map[string]bool{
		"/usr/sbin/sendmail": true, "sendmail": true, `C:\Tools\sendmail.exe`: true, `C:\Tools\SENDMAIL.EXE`: true,
		"./sendmail.exe": true, "/usr/bin/mpp": false, `C:\mpp.exe`: false, "sendmail.sh": false, "": false,
	} {
		if got := isSendmailName(name); got != want {
			t.Errorf("isSendmailName(%q) = %v, want %v", name, got, want)
		}
	}
}
