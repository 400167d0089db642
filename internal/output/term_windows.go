//go:build windows

package output

import "golang.org/x/sys/windows"

// terminalColumns returns the width of the console window in cells, or 0
// when the handle is not a console (a Cygwin or MSYS pipe, for one).
func terminalColumns(fd uintptr) int {
	var info windows.ConsoleScreenBufferInfo
	if err := windows.GetConsoleScreenBufferInfo(windows.Handle(fd), &info); err != nil {
		return 0
	}
	return int(info.Window.Right-info.Window.Left) + 1
}
