package detect_test

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/detect/detecttest"
)

// BenchmarkDetect runs the detector over synthetic fleets of n process starts
// plus n connections. Beside the standard figures it reports cpu-ns/op, the
// process's CPU time per run (with GOMAXPROCS=1 this is the one-core cost),
// input-B, the heap the generated events occupy, to compare with B/op, and
// detections, the number of rows found.
func BenchmarkDetect(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			before := liveHeap()
			procs, conns := detecttest.Synthetic(n, 1)
			input := liveHeap() - before
			opts := detect.DefaultOptions()

			b.ReportAllocs()
			var detections []detect.Detection
			start := processCPUTime()
			for b.Loop() {
				detections = detect.Detect(procs, conns, opts)
			}

			b.ReportMetric(float64(processCPUTime()-start)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(input), "input-B")
			b.ReportMetric(float64(len(detections)), "detections")
		})
	}
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.HeapAlloc
}
