package main

// Where mpp keeps its files on each desktop. The choice is a pure
// function of the operating system's name and the environment, so that
// it is tested for every GOOS on any machine (paths_test.go).
//
//	             config file                       queue
//	Linux, BSD   $XDG_CONFIG_HOME/mpp/config       $XDG_STATE_HOME/mpp/queue
//	and macOS    (~/.config/mpp/config)            (~/.local/state/mpp/queue)
//	  as root    (the same)                        /var/spool/mpp/queue
//	Windows      %APPDATA%\mpp\config              %LOCALAPPDATA%\mpp\queue
//
// macOS follows the XDG layout rather than ~/Library/Application Support:
// mpp is a command-line program configured by hand, as msmtp, git and
// most such programs are there, and one layout is one thing to document.

import (
	"strings"
)

// systemQueueDir is the queue of mpp run as root (by cron, say) on Unix.
const systemQueueDir = "/var/spool/mpp/queue"

// platform is what the default paths depend on.
type platform struct {
	goos   string
	getenv func(string) string
	root   bool // running as root (Unix)
}

// defaultConfigPath is the config file, or "" if the environment names
// no home to put it in.
func defaultConfigPath(p platform) string {
	if p.goos == "windows" {
		return winPath(p.getenv("APPDATA"), "mpp", "config")
	}
	return xdgPath(p.getenv, "XDG_CONFIG_HOME", ".config", "mpp", "config")
}

// defaultQueueDir is the queue directory, or "" if there is none.
func defaultQueueDir(p platform) string {
	switch {
	case p.goos == "windows":
		return winPath(p.getenv("LOCALAPPDATA"), "mpp", "queue")
	case p.root:
		return systemQueueDir
	}
	return xdgPath(p.getenv, "XDG_STATE_HOME", ".local/state", "mpp", "queue")
}

// xdgPath is $env/elem... if $env is an absolute path (the XDG Base
// Directory Specification ignores a relative one), else
// $HOME/fallback/elem..., else "".
func xdgPath(getenv func(string) string, env, fallback string, elem ...string) string {
	rest := strings.Join(elem, "/")
	if dir := getenv(env); strings.HasPrefix(dir, "/") {
		return strings.TrimSuffix(dir, "/") + "/" + rest
	}
	if home := getenv("HOME"); strings.HasPrefix(home, "/") {
		return strings.TrimSuffix(home, "/") + "/" + fallback + "/" + rest
	}
	return ""
}

// winPath joins elem to base with backslashes, or is "" when base is not
// an absolute Windows path (C:\... or \\server\share\...).
func winPath(base string, elem ...string) string {
	abs := len(base) >= 3 && base[1] == ':' && (base[2] == '\\' || base[2] == '/') ||
		strings.HasPrefix(base, `\\`)
	if !abs {
		return ""
	}
	return strings.TrimRight(base, `\/`) + `\` + strings.Join(elem, `\`)
}

// isSendmailName reports whether argv[0] names sendmail: /usr/sbin/sendmail,
// a link called sendmail, or on Windows a copy renamed sendmail.exe.
func isSendmailName(argv0 string) bool {
	base := argv0[strings.LastIndexAny(argv0, `/\`)+1:]
	base = strings.ToLower(base)
	return strings.TrimSuffix(base, ".exe") == "sendmail"
}
