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
// input-B, the heap the generated events occupy, alloc/input, the bytes
// allocated per run divided by input-B (under 1 keeps the peak under twice
// the input), and detections, the number of rows found. With -short only
// the smallest fleet runs.
func BenchmarkDetect(b *testing.B) {
	sizes := []int{1_000, 10_000, 100_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			before := liveHeap()
			procs, conns := detecttest.Synthetic(n, 1)
			input := liveHeap() - before
			opts := detect.DefaultOptions()

			b.ReportAllocs()
			var detections []detect.Detection
			start := processCPUTime()
			allocatedBefore := totalAlloc()
			for b.Loop() {
				detections = detect.Detect(procs, conns, opts)
			}
			allocated := float64(totalAlloc()-allocatedBefore) / float64(b.N)

			b.ReportMetric(float64(processCPUTime()-start)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(input), "input-B")
			b.ReportMetric(allocated/float64(input), "alloc/input")
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

// totalAlloc returns the bytes allocated on the heap since the process
// started.
func totalAlloc() uint64 {
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.TotalAlloc
}
