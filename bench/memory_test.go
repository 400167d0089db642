package bench

import "testing"

// measure starts measuring the process's peak memory and CPU time and
// returns a function that reports them as metrics of b, to be called right
// after the timed loop:
//
//   - peak-RSS-MB: the peak resident set size since the start, and
//     base-RSS-MB, the resident set size at the start. The process also
//     holds the engine, the stand-in and the generated rows, so the
//     baseline shows what was resident before the measured work began;
//   - cpu-ns/op: CPU time per operation of all goroutines, the stand-in's
//     included.
func measure(b *testing.B) (report func()) {
	baseline, rssOK := resetPeakRSS()
	cpuStart, cpuOK := processCPUTime()
	return func() {
		if cpuOK {
			if cpuEnd, ok := processCPUTime(); ok && b.N > 0 {
				b.ReportMetric(float64((cpuEnd-cpuStart).Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		}
		if !rssOK {
			return
		}
		if peak, ok := peakRSS(); ok {
			b.ReportMetric(float64(peak)/1e6, "peak-RSS-MB")
			b.ReportMetric(float64(baseline)/1e6, "base-RSS-MB")
		}
	}
}
