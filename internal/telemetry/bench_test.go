package telemetry_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// BenchmarkLoadNXLog measures loading the 12 MB Empire PsExec recording from
// memory, so that the disk does not take part.
func BenchmarkLoadNXLog(b *testing.B) {
	content, err := os.ReadFile(testrecordings.Path(b, testrecordings.EmpirePsExec))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()

	for b.Loop() {
		batch, err := telemetry.Load(b.Context(), bytes.NewReader(content), testrecordings.EmpirePsExec, telemetry.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(batch.Rows[telemetry.WindowsEventsTable]) == 0 {
			b.Fatal("no rows loaded")
		}
	}
}
