package sources_test

import (
	"strconv"
	"testing"

	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// benchmarkRows is osquery's default --events_max. That flag limits stored
// batches (distinct seconds), not rows, so the count is a typical buffer
// size rather than the largest one.
const benchmarkRows = 50_000

// BenchmarkDecode decodes 5,000 and 50,000 rows per source, repeating the
// source's rows of the reboot recording, which has the most Sysmon and
// Security events of the recordings. With -short only 5,000 rows are
// decoded.
func BenchmarkDecode(b *testing.B) {
	counts := []int{benchmarkRows / 10, benchmarkRows}
	if testing.Short() {
		counts = counts[:1]
	}
	for _, source := range []sources.Source{sources.NewSysmon(), sources.NewSecurity()} {
		selected := sourceRows(b, testrecordings.EmpireRunKeysReboot, source)
		for _, count := range counts {
			b.Run(source.Name()+"/rows="+strconv.Itoa(count), func(b *testing.B) {
				rows := make([]map[string]string, 0, count)
				for len(rows) < count {
					rows = append(rows, selected[:min(len(selected), count-len(rows))]...)
				}

				b.ReportAllocs()
				for b.Loop() {
					source.Decode(rows)
				}
			})
		}
	}
}
