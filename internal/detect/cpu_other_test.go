//go:build !unix

package detect_test

import "time"

// processCPUTime returns 0 where getrusage is missing. The benchmarks then
// report only wall time.
func processCPUTime() time.Duration {
	return 0
}
