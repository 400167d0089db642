//go:build unix

package bench

import (
	"syscall"
	"time"
)

// processCPUTime returns the CPU time the process has used, user plus
// system. The benchmarks report it beside wall time, because on a shared
// machine other processes stretch wall time but not CPU time.
func processCPUTime() (time.Duration, bool) {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0, false
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()), true
}
