//go:build !linux

package bench

// resetPeakRSS reports false where /proc/self/clear_refs is missing; the
// benchmarks then report no peak memory.
func resetPeakRSS() (baseline int64, ok bool) {
	return 0, false
}

func peakRSS() (int64, bool) {
	return 0, false
}
