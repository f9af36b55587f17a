//go:build !linux

package staging

import "os"

// openNameless: only Linux has O_TMPFILE. mppd runs on Linux only; this
// keeps the package building where the client's tests are vetted.
func openNameless(dir string) (f *os.File, tried bool, err error) {
	return nil, false, nil
}
