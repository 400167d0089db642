//go:build !unix

package bench

import "time"

// processCPUTime reports false where getrusage is missing; the benchmarks
// then report only wall time.
func processCPUTime() (time.Duration, bool) {
	return 0, false
}
