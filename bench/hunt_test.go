package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/svclaunch/svclaunch/internal/hunt"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// huntCopies are the numbers of shifted copies of the Empire PsExec
// recording (12.6 MB, one remote launch) that make up the hunt's export: 8
// copies are about 100 MB and span 16 days.
var huntCopies = []int{1, 8}

// huntCopySpacing is the time between two copies of the recording.
const huntCopySpacing = 2 * 24 * time.Hour

// BenchmarkHunt runs `svclaunch hunt` over an NXLog export built from the
// Empire PsExec recording: each copy is shifted by two days and renames
// every host, so each copy holds one remote launch on hosts of its own. The
// load sub-benchmark only parses the export into rows (telemetry.LoadFile).
// The hunt sub-benchmark runs the whole command, which parses, inserts the
// rows into the embedded SQLite, queries the table and writes NDJSON.
func BenchmarkHunt(b *testing.B) {
	recording, err := os.ReadFile(testrecordings.Path(b, testrecordings.EmpirePsExec))
	if err != nil {
		b.Fatal(err)
	}

	for _, copies := range sizes(huntCopies) {
		path := filepath.Join(b.TempDir(), "export.json")
		size := writeShiftedCopies(b, recording, copies, path)

		b.Run(fmt.Sprintf("MB=%d", (size+500_000)/1_000_000), func(b *testing.B) {
			b.Run("load", func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				report := measure(b)
				for b.Loop() {
					batch, err := telemetry.LoadFile(context.Background(), path, telemetry.Options{})
					if err != nil {
						b.Fatal(err)
					}
					if len(batch.Rows[telemetry.WindowsEventsTable]) == 0 {
						b.Fatal("no windows_events rows loaded")
					}
				}
				report()
			})

			b.Run("hunt", func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				report := measure(b)
				var detections int
				for b.Loop() {
					detections = runHunt(b, path)
				}
				report()

				if detections != copies {
					b.Fatalf("hunt found %d detections in %d copies of a recording with one launch", detections, copies)
				}
				b.ReportMetric(float64(detections), "detections")
			})
		})
	}
}

// runHunt runs the hunt command over path and returns the number of
// detections it printed.
func runHunt(b *testing.B, path string) int {
	var stdout, stderr bytes.Buffer
	code := hunt.RunHunt(context.Background(), []string{"--quiet", "--format", "ndjson", path}, nil, &stdout, &stderr)
	if code != hunt.ExitOK {
		b.Fatalf("hunt exited with %d: %s", code, stderr.String())
	}
	return bytes.Count(stdout.Bytes(), []byte("\n"))
}

var (
	// recordingDate is the day of the recording's events, in every time
	// format the NXLog layout writes (EventTime, UtcTime, @timestamp).
	recordingDate = []byte("2020-09-20")
	// hostnameField matches the computer name, whose first label gets the
	// copy's suffix.
	hostnameField = regexp.MustCompile(`"Hostname":"([^".]*)`)
)

// writeShiftedCopies writes copies of recording to path, copy k with every
// date moved k times huntCopySpacing later and every host name's first
// label suffixed with k, and returns the file's size in bytes. Only whole
// days are added, so the clock times, and with them the hosts' UTC offsets,
// stay as recorded.
func writeShiftedCopies(b *testing.B, recording []byte, copies int, path string) int64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)

	day, err := time.Parse(time.DateOnly, string(recordingDate))
	if err != nil {
		b.Fatal(err)
	}
	for k := range copies {
		date := []byte(day.Add(time.Duration(k) * huntCopySpacing).Format(time.DateOnly))
		suffix := fmt.Appendf(nil, "-%02d", k)
		lines := bytes.SplitAfter(recording, []byte("\n"))
		for _, line := range lines {
			line = bytes.ReplaceAll(line, recordingDate, date)
			line = hostnameField.ReplaceAllFunc(line, func(field []byte) []byte {
				return append(field, suffix...)
			})
			if _, err := w.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	}

	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	info, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return info.Size()
}
