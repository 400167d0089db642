//go:build linux

package bench

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// resetPeakRSS returns freed memory to the operating system, resets the
// process's peak resident set size (VmHWM) and returns the resident set
// size it starts from, in bytes. Writing 5 to /proc/self/clear_refs resets
// the peak (Linux 4.0 and later). ok is false where the kernel refuses.
func resetPeakRSS() (baseline int64, ok bool) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, false
	}
	return readStatus("VmRSS:")
}

// peakRSS returns the peak resident set size since the last resetPeakRSS,
// in bytes.
func peakRSS() (int64, bool) {
	return readStatus("VmHWM:")
}

// readStatus reads one kB field of /proc/self/status in bytes.
func readStatus(field string) (int64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	_, rest, found := bytes.Cut(status, []byte(field))
	if !found {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kilobytes, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))), 10, 64)
	if err != nil {
		return 0, false
	}
	return kilobytes * 1024, true
}
