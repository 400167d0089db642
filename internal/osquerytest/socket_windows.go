//go:build windows

package osquerytest

import (
	"crypto/rand"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/Microsoft/go-winio"
)

// defaultSocketPath is osqueryd's --extensions_socket default on Windows.
const defaultSocketPath = `\\.\pipe\osquery.em`

// newManagerPath returns a unique named pipe path. Named pipes need no
// directory, so dir is empty.
// NOTE: the Windows code compiles but has never run, because the tests run
// on Linux.
func newManagerPath() (path, dir string, err error) {
	return `\\.\pipe\osquery-standin-` + strconv.Itoa(os.Getpid()) + "-" + rand.Text()[:8], "", nil
}

func listen(path string) (net.Listener, error) {
	return winio.ListenPipe(path, nil)
}

func dial(path string, timeout time.Duration) (net.Conn, error) {
	return winio.DialPipe(path, &timeout)
}

// socketExists always reports true, because osquery checks a pipe by
// connecting to it, which dial does next.
func socketExists(path string) bool {
	return true
}
