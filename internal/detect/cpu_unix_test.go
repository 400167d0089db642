//go:build unix

package detect_test

import (
	"syscall"
	"time"
)

// processCPUTime returns the CPU time the test process has used, user plus
// system. Benchmarks report it beside wall time because a shared machine
// stretches wall time.
func processCPUTime() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
