package sources_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// recordings caches loaded recordings and the engines that hold them:
// several tests read the same large file, and no test changes it.
var recordings = struct {
	sync.Mutex
	batches map[string]*telemetry.Batch
	engines map[string]*engine.Engine
}{batches: map[string]*telemetry.Batch{}, engines: map[string]*engine.Engine{}}

func TestMain(m *testing.M) {
	code := m.Run()

	for _, e := range recordings.engines {
		if err := e.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing engine:", err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// loadBatch loads a recording through the telemetry loader, once per test
// binary. The caller holds recordings' lock.
func loadBatch(t testing.TB, recording string) *telemetry.Batch {
	t.Helper()

	batch, ok := recordings.batches[recording]
	if !ok {
		var err error
		batch, err = telemetry.LoadFile(context.Background(), testrecordings.Path(t, recording), telemetry.Options{})
		require.NoError(t, err)
		recordings.batches[recording] = batch
	}
	return batch
}

// windowsRows returns every windows_events row of a recording, as the
// loader produced them.
func windowsRows(t testing.TB, recording string) []map[string]string {
	t.Helper()

	testrecordings.Path(t, recording)

	recordings.Lock()
	defer recordings.Unlock()
	return loadBatch(t, recording).Rows[telemetry.WindowsEventsTable]
}

// sourceRows runs a source's own query over a recording loaded into the
// engine and returns the rows the query selects, as osquery would.
func sourceRows(t testing.TB, recording string, source sources.Source) []map[string]string {
	t.Helper()

	testrecordings.Path(t, recording)

	recordings.Lock()
	e, ok := recordings.engines[recording]
	if !ok {
		batch := loadBatch(t, recording)

		var err error
		// The engine outlives this test, so it is not opened under
		// t.TempDir; TestMain closes it, which removes its directory.
		e, err = engine.Open(context.Background(), engine.Options{})
		require.NoError(t, err)
		for table, rows := range batch.Rows {
			require.NoError(t, e.Insert(context.Background(), table, rows))
		}
		e.SetClock(batch.Clock)
		recordings.engines[recording] = e
	}
	recordings.Unlock()

	query, err := source.Query(sources.Bounds{Lower: 0})
	require.NoError(t, err)
	rows, err := e.QueryRows(t.Context(), query)
	require.NoError(t, err)
	return rows
}

// eventRow builds a windows_events row the way osquery stores one: every
// EventData value a string inside {"EventData":{...}}.
func eventRow(t *testing.T, channel string, eventID int, host, datetime string, data map[string]string) map[string]string {
	t.Helper()

	encoded, err := json.Marshal(map[string]any{"EventData": data})
	require.NoError(t, err)
	return map[string]string{
		"time":          "1600618620",
		"datetime":      datetime,
		"source":        channel,
		"computer_name": host,
		"eventid":       strconv.Itoa(eventID),
		"data":          string(encoded),
	}
}

// utc parses a UTC time written as in the recordings' Sysmon UtcTime.
func utc(t *testing.T, s string) int64 {
	t.Helper()

	parsed, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	require.NoError(t, err)
	return parsed.UnixNano()
}

// findProcess returns the only process with the given host and path among
// procs whose parent pid is parentPID.
func findProcess(t *testing.T, procs []detect.ProcessStart, host string, parentPID int64, path string) detect.ProcessStart {
	t.Helper()

	var found []detect.ProcessStart
	for _, p := range procs {
		if p.Host == host && p.ParentPID == parentPID && strings.EqualFold(p.Path, path) {
			found = append(found, p)
		}
	}
	require.Len(t, found, 1, "processes of parent %d with path %s on %s", parentPID, path, host)
	return found[0]
}

// findConnection returns the only connection on host with the given remote
// port.
func findConnection(t *testing.T, conns []detect.Connection, host string, remotePort int) detect.Connection {
	t.Helper()

	var found []detect.Connection
	for _, c := range conns {
		if c.Host == host && c.RemotePort == remotePort {
			found = append(found, c)
		}
	}
	require.Len(t, found, 1, "connections with remote port %d on %s", remotePort, host)
	return found[0]
}
