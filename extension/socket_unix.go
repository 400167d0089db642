//go:build !windows

package extension

import "os"

// checkSocket returns an error unless the Unix socket file exists. A file
// with no listener behind it fails later, at connect.
func checkSocket(path string) error {
	_, err := os.Stat(path)
	return err
}
