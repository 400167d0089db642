package hunt

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/telemetry"
)

func TestSummaryLine(t *testing.T) {
	t.Parallel()

	s := newSummary()
	s.addBatch("a.json", &telemetry.Batch{
		Format:  telemetry.FormatNXLog,
		Rows:    map[string][]map[string]string{"windows_events": make([]map[string]string, 3)},
		Skipped: map[string]int{telemetry.SkipMalformedJSON: 2, telemetry.SkipUnknownOffset: 5},
		Offsets: map[string]telemetry.OffsetInfo{
			"WORKSTATION6.theshire.local": {Offset: -4 * time.Hour, Method: telemetry.OffsetLearned, Events: 20},
			"WORKSTATION6":                {Offset: -4 * time.Hour, Method: telemetry.OffsetLearned, Events: 20, From: "WORKSTATION6.theshire.local"},
			"MORDORDC":                    {Method: telemetry.OffsetUnknown, Skipped: 5},
		},
		Clock: 100,
	})
	s.addBatch("b.json", &telemetry.Batch{
		Format: telemetry.FormatNXLog,
		Rows:   map[string][]map[string]string{"windows_events": make([]map[string]string, 1)},
		Offsets: map[string]telemetry.OffsetInfo{
			"WORKSTATION6.theshire.local": {Offset: -4 * time.Hour, Method: telemetry.OffsetLearned, Events: 1, Disagreeing: 1},
		},
		Clock: 50,
	})

	require.Equal(t, int64(100), s.clock)
	require.Equal(t, "svclaunch hunt: 2 files (nxlog); loaded windows_events 4; "+
		"skipped 7 events (local time without known UTC offset: 5, malformed JSON: 2); "+
		"UTC offset MORDORDC unknown (5 events skipped: set --utc-offset), "+
		"WORKSTATION6 -04:00 learned from 20 events of WORKSTATION6.theshire.local, "+
		"WORKSTATION6.theshire.local -04:00 learned from 21 events (1 disagreed); 1 detection\n",
		s.line("hunt", 1, "detection"))
}

func TestSummaryNotes(t *testing.T) {
	t.Parallel()

	s := newSummary()
	s.addBatch("a.evtx", &telemetry.Batch{
		Format: telemetry.FormatEvtx,
		Rows:   map[string][]map[string]string{"windows_events": make([]map[string]string, 41)},
		Notes:  map[string]int{telemetry.NoteEvtxChecksum: 41, telemetry.NoteUserDataFlattened: 0},
	})
	s.addBatch("b.evtx", &telemetry.Batch{
		Format: telemetry.FormatEvtx,
		Rows:   map[string][]map[string]string{"windows_events": make([]map[string]string, 2)},
		Notes:  map[string]int{telemetry.NoteEvtxChecksum: 1, telemetry.NoteEvtxParsedValues: 2},
	})

	require.Equal(t, "svclaunch hunt: 2 files (evtx); loaded windows_events 43; skipped 0 events; "+
		"notes (.evtx record from a chunk whose checksum does not match: 42, "+
		".evtx record read without its typed values: 2); 0 detections\n",
		s.line("hunt", 0, "detection"))
}

func TestSummaryDisagreeingInputs(t *testing.T) {
	t.Parallel()

	s := newSummary()
	s.addBatch("a.json", &telemetry.Batch{Offsets: map[string]telemetry.OffsetInfo{
		"HOST": {Offset: 5*time.Hour + 30*time.Minute, Method: telemetry.OffsetFlag},
	}})
	s.addBatch("b.json", &telemetry.Batch{Offsets: map[string]telemetry.OffsetInfo{
		"HOST": {Method: telemetry.OffsetUnknown},
	}})

	line := s.line("query", 0, "row")
	require.Contains(t, line, "UTC offset HOST +05:30 from --utc-offset in a.json, unknown in b.json")
	require.True(t, strings.HasSuffix(line, "; 0 rows\n"), line)
}

func TestSummaryEscapesHostNames(t *testing.T) {
	t.Parallel()

	s := newSummary()
	s.addBatch("evil\x1b[2J.json", &telemetry.Batch{Offsets: map[string]telemetry.OffsetInfo{
		"HOST\x1b]0;owned\x07": {Method: telemetry.OffsetUnknown},
	}})

	line := s.line("hunt", 0, "detection")
	require.Contains(t, line, `HOST\x1b]0;owned\x07 unknown`)
	require.NotContains(t, line, "\x1b")
}

func TestSummaryNothingLoaded(t *testing.T) {
	t.Parallel()

	require.Equal(t, "svclaunch hunt: 0 files; loaded no rows; skipped 0 events; 0 detections\n",
		newSummary().line("hunt", 0, "detection"))
}

func TestProgressLine(t *testing.T) {
	t.Parallel()

	require.Equal(t, "a.json [===============               ]  50% 5.0 MiB / 10.0 MiB",
		progressLine("a.json", 5<<20, 10<<20, 80))
	require.Equal(t, "standard input 1.5 KiB read", progressLine("standard input", 1536, -1, 80))

	line := progressLine("/very/long/path/to/a/recording/file.json.gz", 1, 2, 70)
	require.Equal(t, 69, len([]rune(line)), line)
	require.True(t, strings.HasPrefix(line, "/very/long/path/to/a… ["), line)

	require.Equal(t, `evil\x1b[2J 0 B read`, progressLine("evil\x1b[2J", 0, 0, 80))
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()

	require.Equal(t, "0 B", formatBytes(0))
	require.Equal(t, "1023 B", formatBytes(1023))
	require.Equal(t, "1.0 KiB", formatBytes(1024))
	require.Equal(t, "12.1 MiB", formatBytes(12650959))
	require.Equal(t, "2.0 GiB", formatBytes(2<<30))
}

// firstWrite is a writer that signals its first write.
type firstWrite struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 {
		close(w.written)
	}
	return w.buf.Write(p)
}

func TestTerminalProgressDrawsAndClears(t *testing.T) {
	t.Parallel()

	w := &firstWrite{written: make(chan struct{})}
	pr, pw := io.Pipe()
	r, stop := terminalProgress(w, 0)("big.json", pr, 2048)

	// Feed the reader while the bar is drawn, then finish.
	go func() {
		pw.Write(make([]byte, 1024))
		<-w.written
		pw.Close()
	}()
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Len(t, data, 1024)
	stop()

	out := w.buf.String()
	require.True(t, strings.HasPrefix(out, "\rbig.json ["), out)
	require.True(t, strings.HasSuffix(out, "\r"+strings.Repeat(" ", 119)+"\r"), "the bar is blanked at the end")
}

func TestTerminalProgressSilentForShortLoads(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	r, stop := terminalProgress(&buf, time.Hour)("small.json", strings.NewReader("abc"), 3)
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "abc", string(data))
	stop()
	require.Empty(t, buf.String())
}

func TestSummarySkippedLines(t *testing.T) {
	t.Parallel()

	s := newSummary()
	s.addBatch("a.json", &telemetry.Batch{
		Skipped:      map[string]int{telemetry.SkipMalformedJSON: 7, telemetry.SkipMissingChannel: 1},
		SkippedLines: map[string][]int{telemetry.SkipMalformedJSON: {17, 204, 205, 300, 301}, telemetry.SkipMissingChannel: {9}},
	})
	s.addBatch("b.json", &telemetry.Batch{
		Skipped:      map[string]int{telemetry.SkipMalformedJSON: 1},
		SkippedLines: map[string][]int{telemetry.SkipMalformedJSON: {3}},
	})

	line := s.line("hunt", 0, "detection")
	require.Contains(t, line, "skipped 9 events (malformed JSON: 8 [a.json lines 17, 204, 205, 300, 301, ...; b.json line 3], "+
		"missing channel: 1 [a.json line 9]);")
}
