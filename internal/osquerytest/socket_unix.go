//go:build !windows

package osquerytest

import (
	"net"
	"os"
	"path/filepath"
	"time"
)

// defaultSocketPath is osqueryd's --extensions_socket default on Linux and
// macOS.
const defaultSocketPath = "/var/osquery/osquery.em"

// newManagerPath creates a temporary directory for the manager socket. The
// directory name stays short because osquery-go rejects socket paths longer
// than 97 characters.
func newManagerPath() (path, dir string, err error) {
	dir, err = os.MkdirTemp("", "osq")
	if err != nil {
		return "", "", err
	}
	return filepath.Join(dir, "osquery.em"), dir, nil
}

func listen(path string) (net.Listener, error) {
	return net.Listen("unix", path)
}

func dial(path string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("unix", path, timeout)
}

// socketExists reports whether a socket file exists at path.
func socketExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().Type() == os.ModeSocket
}
