package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// unitDirs hold the links of enabled units (systemctl enable), system-wide
// and for this boot only.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system"}

// enabledSockets returns the socket units enabled in dirs (a link in some
// *.wants directory) that pass a socket named one of names: their
// FileDescriptorName=, or the unit's own name when it sets none, as
// systemd does. --check-config uses it to find an mpps socket that mppd
// has no certificate for. Drop-ins are not read.
func enabledSockets(dirs, names []string) []string {
	var found []string
	for _, dir := range dirs {
		links, _ := filepath.Glob(filepath.Join(dir, "*.wants", "*.socket"))
		for _, link := range links {
			unit := filepath.Base(link)
			if slices.Contains(found, unit) {
				continue
			}
			name, ok := fdName(link)
			if ok && slices.Contains(names, name) {
				found = append(found, unit)
			}
		}
	}
	return found
}

// fdName reads the FileDescriptorName= of the socket unit file at path
// (the last one set wins); ok is false when the file cannot be read.
func fdName(path string) (name string, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	name = filepath.Base(path)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, found := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if found && strings.TrimSpace(k) == "FileDescriptorName" {
			name = strings.TrimSpace(v)
		}
	}
	return name, sc.Err() == nil
}

// checkTLSSockets is the part of --check-config that looks past the file:
// an enabled socket unit passing an mpps socket while [tls] is not set
// would not be served.
func checkTLSSockets(tlsSet bool, mppsNames []string) error {
	if tlsSet {
		return nil
	}
	if units := enabledSockets(unitDirs, mppsNames); len(units) > 0 {
		return fmt.Errorf("%s is enabled and passes an mpps socket (systemd.mpps_sockets %q), but [tls] sets no cert_file and key_file: mppd would not serve it; set them, or systemctl disable --now %s",
			strings.Join(units, ", "), mppsNames, strings.Join(units, " "))
	}
	return nil
}
