//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris

package output

import "golang.org/x/sys/unix"

// terminalColumns returns the terminal's width in cells, or 0 when the
// TIOCGWINSZ ioctl fails.
func terminalColumns(fd uintptr) int {
	size, err := unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(size.Col)
}
