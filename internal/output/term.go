package output

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IsTerminal reports whether w is a terminal (a console on Windows, including
// Cygwin and MSYS terminals).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}

// TerminalWidth returns the width in cells of the terminal w writes to, or
// DefaultWidth when w is not a terminal or its size cannot be read.
func TerminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !IsTerminal(w) {
		return DefaultWidth
	}
	if columns := terminalColumns(f.Fd()); columns > 0 {
		return columns
	}
	return DefaultWidth
}
