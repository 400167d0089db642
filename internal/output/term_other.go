//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || windows)

package output

// terminalColumns returns 0 because this platform offers no portable way to
// read a terminal's size; tables use DefaultWidth.
func terminalColumns(uintptr) int {
	return 0
}
