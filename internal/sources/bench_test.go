package sources_test

import (
	"testing"

	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// benchmarkRows is osquery's default --events_max. That flag limits stored
// batches (distinct seconds), not rows, so the count is a typical buffer
// size rather than the largest one.
const benchmarkRows = 50_000

// BenchmarkDecode decodes 50,000 rows per source, repeating the source's
// rows of the reboot recording, which has the most Sysmon and Security
// events of the recordings.
func BenchmarkDecode(b *testing.B) {
	for _, source := range sources.Windows() {
		b.Run(source.Name(), func(b *testing.B) {
			selected := sourceRows(b, testrecordings.EmpireRunKeysReboot, source)
			rows := make([]map[string]string, 0, benchmarkRows)
			for len(rows) < benchmarkRows {
				rows = append(rows, selected[:min(len(selected), benchmarkRows-len(rows))]...)
			}

			b.ReportAllocs()
			for b.Loop() {
				source.Decode(rows)
			}
		})
	}
}
