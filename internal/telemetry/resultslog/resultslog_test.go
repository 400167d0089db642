package resultslog_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/telemetry/resultslog"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

func TestReplayRoundTrip(t *testing.T) {
	t.Parallel()

	offset := -4 * time.Hour
	recordings := []struct {
		path string
		opts telemetry.Options
	}{
		{path: testrecordings.EmpirePsExec},
		{path: testrecordings.EmpireRunKeysReboot},
		{path: testrecordings.EmpireFindLocalAdmin, opts: telemetry.Options{UTCOffset: &offset}},
		{path: testrecordings.MeterpreterPsExecJSONL},
		{path: testrecordings.BenignSysmonEVTX},
	}

	for _, recording := range recordings {
		t.Run(recording.path, func(t *testing.T) {
			t.Parallel()

			original, err := telemetry.LoadFile(t.Context(), testrecordings.Path(t, recording.path), recording.opts)
			require.NoError(t, err)
			require.NotEmpty(t, original.Rows[telemetry.WindowsEventsTable])

			var log bytes.Buffer
			require.NoError(t, resultslog.Write(&log, original, resultslog.Options{}))
			require.Equal(t, len(original.Rows[telemetry.WindowsEventsTable]), strings.Count(log.String(), "\n"))

			replayed, err := telemetry.Load(t.Context(), &log, "replay.log", telemetry.Options{})
			require.NoError(t, err)
			require.Equal(t, telemetry.FormatOsqueryResults, replayed.Format)
			require.Zero(t, replayed.SkippedTotal())
			require.Equal(t, original.Rows, replayed.Rows)
			require.Equal(t, original.Hosts, replayed.Hosts)
			require.Equal(t, original.Clock, replayed.Clock)
		})
	}
}

func TestWriteLineLayout(t *testing.T) {
	t.Parallel()

	b := &telemetry.Batch{
		Rows: map[string][]map[string]string{
			"process_events": {{"pid": "7", "path": "/bin/sh", "time": "1600618617"}},
			"processes":      {{"pid": "1", "name": "init"}},
		},
		Hosts: map[string][]string{
			"process_events": {"web1"},
			"processes":      {"web2"},
		},
		Clock: 1600000000,
	}

	var log bytes.Buffer
	require.NoError(t, resultslog.Write(&log, b, resultslog.Options{QueryPrefix: "pack_test"}))

	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	require.Len(t, lines, 2)

	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	require.Equal(t, "pack_test_process_events", first["name"])
	require.Equal(t, "web1", first["hostIdentifier"])
	require.Equal(t, "Sun Sep 20 16:16:57 2020 UTC", first["calendarTime"])
	require.InDelta(t, 1600618617, first["unixTime"], 0)
	require.Equal(t, "added", first["action"])
	require.Equal(t, map[string]any{"pid": "7", "path": "/bin/sh", "time": "1600618617"}, first["columns"])

	var second map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &second))
	require.Equal(t, "pack_test_processes", second["name"])
	require.InDelta(t, 1600000000, second["unixTime"], 0, "rows without time use the batch clock")
	require.Equal(t, "Sun Sep 13 12:26:40 2020 UTC", second["calendarTime"])
}
