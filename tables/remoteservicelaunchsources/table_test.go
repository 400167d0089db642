package remoteservicelaunchsources_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/windowstest"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunchsources"
)

func TestColumnsAndSpec(t *testing.T) {
	t.Parallel()

	want := []string{
		"source", "table", "event_ids", "provides", "table_exists", "subscriber_active", "publisher_active",
		"events", "newest_event_time", "last_read_time", "rows_read", "rows_skipped", "skip_reason",
		"row_cap_reached", "last_error", "status", "hint",
	}
	var names []string
	for _, c := range remoteservicelaunchsources.Columns() {
		names = append(names, c.Name)
		require.NotEmpty(t, c.Description, c.Name)
		require.Equal(t, uint8(0), c.Options(), "column %s", c.Name)
	}
	require.Equal(t, want, names)

	spec := remoteservicelaunchsources.New(remoteservicelaunchsources.Config{}).Plugin().Spec()
	require.Equal(t, "remote_service_launch_sources", spec.Name)
	require.NotEmpty(t, spec.Description)
	require.NotEmpty(t, spec.Examples)
	require.NotEmpty(t, spec.Notes)
	platforms, err := json.Marshal(spec.Platforms)
	require.NoError(t, err)
	require.JSONEq(t, `["windows","linux","darwin"]`, string(platforms))
}

// TestWindowsSetups runs both tables on each Windows set-up of
// docs/windows-sources.md: each finds the Empire PsExec launch as one row,
// and the sources table reports which sources serve it and why the others
// do not.
func TestWindowsSetups(t *testing.T) {
	t.Parallel()

	type source struct{ status, hint string }
	tests := []struct {
		setup      windowstest.Setup
		pid        string
		processes  string
		sources    map[string]source
		readByRows []string
	}{
		{
			setup: windowstest.SysmonOnly,
			// The forwarder dropped ProcessId from the Sysmon events.
			pid:       "-1",
			processes: "sysmon",
			sources: map[string]source{
				"sysmon":   {status: "ok"},
				"security": {status: "disabled", hint: "add Security to --windows_event_channels"},
				"etw":      {status: "disabled", hint: "set --enable_process_etw_events=true"},
			},
			readByRows: []string{"sysmon"},
		},
		{
			setup:     windowstest.SecurityOnly,
			pid:       "9028",
			processes: "security",
			sources: map[string]source{
				"sysmon":   {status: "disabled", hint: "add Microsoft-Windows-Sysmon/Operational to --windows_event_channels"},
				"security": {status: "ok"},
				"etw":      {status: "disabled", hint: "set --enable_process_etw_events=true"},
			},
			readByRows: []string{"security"},
		},
		{
			setup:     windowstest.ETWWithSecurity,
			pid:       "9028",
			processes: "etw",
			sources: map[string]source{
				"sysmon":   {status: "disabled", hint: "add Microsoft-Windows-Sysmon/Operational to --windows_event_channels"},
				"security": {status: "ok", hint: `etw provides the process starts, so this is optional: no Security event 4688 in the last 3600 s: run auditpol /set /subcategory:"Process Creation" /success:enable`},
				"etw":      {status: "ok"},
			},
			readByRows: []string{"security", "etw"},
		},
		{
			setup:     windowstest.AllSources,
			pid:       "9028",
			processes: "etw,security,sysmon",
			sources: map[string]source{
				"sysmon":   {status: "ok"},
				"security": {status: "ok"},
				"etw":      {status: "ok"},
			},
			readByRows: []string{"sysmon", "security", "etw"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.setup.Name, func(t *testing.T) {
			t.Parallel()

			e := setupEngine(t, tt.setup)
			both := newTables(e, nil)
			attach(t, e, both.launches.Plugin())
			attach(t, e, both.sources.Plugin())

			launches, err := e.QueryRows(t.Context(), "SELECT * FROM remote_service_launches")
			require.NoError(t, err)
			require.Len(t, launches, 1, rowJSON(launches))
			require.Equal(t, tt.pid, launches[0]["pid"])
			require.Equal(t, "704", launches[0]["parent"])
			require.Equal(t, "172.18.39.5", launches[0]["remote_address"])
			require.Equal(t, tt.processes, launches[0]["process_sources"])

			rows, err := e.QueryRows(t.Context(), "SELECT * FROM remote_service_launch_sources")
			require.NoError(t, err)
			got := bySource(t, rows)
			require.Len(t, got, 3, rowJSON(rows))
			for name, want := range tt.sources {
				row := got[name]
				require.Equal(t, want.status, row["status"], "%s: %s", name, rowJSON(row))
				if want.hint == "" {
					require.Empty(t, row["hint"], name)
				} else {
					require.Contains(t, row["hint"], want.hint, name)
				}
				require.Empty(t, row["last_error"], name)
				require.Equal(t, "1", row["table_exists"], name)
			}

			for name, row := range got {
				read := slices.Contains(tt.readByRows, name)
				rowsRead, err := strconv.Atoi(row["rows_read"])
				require.NoError(t, err, name)
				if read {
					require.Positive(t, rowsRead, "%s was read", name)
					events, err := strconv.Atoi(row["events"])
					require.NoError(t, err)
					require.Positive(t, events, name)
					require.NotEqual(t, "0", row["newest_event_time"], name)
				} else {
					require.Equal(t, -1, rowsRead, "%s was not read", name)
					require.Equal(t, "-1", row["events"], "%s was not counted", name)
				}
				require.NotEqual(t, "0", row["last_read_time"], name)
			}
		})
	}
}

// TestStatusMissing runs on an osquery older than 5.8, without
// process_etw_events.
func TestStatusMissing(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.SecurityOnly)
	_, err := e.QueryRows(t.Context(), "DELETE FROM osquery_registry WHERE name = 'process_etw_events'")
	require.NoError(t, err)

	rows, err := newTables(e, nil).sources.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	etw := bySource(t, rows)["etw"]
	require.Equal(t, "missing", etw["status"])
	require.Equal(t, "0", etw["table_exists"])
	require.Contains(t, etw["hint"], "process_etw_events needs osquery 5.8 or later")
}

// TestStatusEmpty turns every source on but loads no events.
func TestStatusEmpty(t *testing.T) {
	t.Parallel()

	e := openEngine(t)
	require.NoError(t, windowstest.DescribeHost(t.Context(), e, windowstest.AllSources))
	e.SetClock(1600620000)

	rows, err := newTables(e, nil).sources.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	got := bySource(t, rows)
	require.Equal(t, "empty", got["sysmon"]["status"])
	require.Contains(t, got["sysmon"]["hint"], "no Sysmon event 1 or 3 in the last 3600 s")
	require.Equal(t, "empty", got["security"]["status"])
	require.Contains(t, got["security"]["hint"], `auditpol /set /subcategory:"Filtering Platform Connection" /success:enable`)
	require.Equal(t, "empty", got["etw"]["status"])
	for name, row := range got {
		require.Equal(t, "0", row["events"], name)
		require.Equal(t, "-1", row["rows_read"], "%s: the detection has not run", name)
		require.Equal(t, "0", row["last_read_time"], name)
	}
}

// TestStatusETWStopsWithoutStarts stores only ProcessStop events, as osquery
// does on Windows 11 24H2.
func TestStatusETWStopsWithoutStarts(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.ETWWithSecurity)
	_, err := e.QueryRows(t.Context(), "UPDATE process_etw_events SET type = 'ProcessStop'")
	require.NoError(t, err)

	both := newTables(e, nil)
	_, err = both.launches.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err, "Security still provides the connections, and ETW returns no rows")

	rows, err := both.sources.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	got := bySource(t, rows)
	etw := got["etw"]
	require.Equal(t, "error", etw["status"], rowJSON(etw))
	require.Contains(t, etw["hint"], "ProcessStop events but no ProcessStart in the last 3600 s: a known osquery defect on Windows 11 24H2")
	require.Equal(t, "0", etw["events"], "no event the detection can use")
	require.Equal(t, "0", etw["rows_read"])

	require.Equal(t, "empty", got["security"]["status"], "nothing else provides the process starts")
	require.Contains(t, got["security"]["hint"], "no Security event 4688")
}

// TestStatusError makes the count and the read of the Security events fail.
func TestStatusError(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.AllSources)
	q := &recordingQuerier{next: e, fail: "lower(source) = 'security'"}
	both := newTables(q, nil)
	_, err := both.launches.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)

	rows, err := both.sources.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	got := bySource(t, rows)
	security := got["security"]
	require.Equal(t, "error", security["status"])
	require.Contains(t, security["last_error"], "counting security events: query returned error: database disk image is malformed")
	require.Contains(t, security["hint"], "counting the events in windows_events failed")
	require.Equal(t, "-1", security["rows_read"], "the last read failed")
	require.Equal(t, "ok", got["sysmon"]["status"])
	require.Equal(t, "ok", got["etw"]["status"])
}

// TestLastReadShown checks that the detection's row cap and skipped rows
// reach the sources table.
func TestLastReadShown(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.ETWWithSecurity)
	require.NoError(t, e.Insert(t.Context(), "process_etw_events", []map[string]string{
		// A zero-based FILETIME (1601) that a broken ETW header would give.
		{"type": "ProcessStart", "pid": "4242", "ppid": "704", "time": "1600618616", "time_windows": "1"},
	}))

	capped := newTables(e, func(cfg *remoteservicelaunches.Config) { cfg.MaxRowsPerSource = 3 })
	_, err := capped.launches.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	rows, err := capped.sources.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	etw := bySource(t, rows)["etw"]
	require.Equal(t, "1", etw["row_cap_reached"])
	require.Equal(t, "3", etw["rows_read"])
	require.Contains(t, etw["hint"], "stopped at its cap of 3 rows")

	uncapped := newTables(e, nil)
	_, err = uncapped.launches.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	rows, err = uncapped.sources.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	etw = bySource(t, rows)["etw"]
	require.Equal(t, "0", etw["row_cap_reached"])
	require.Equal(t, "1", etw["rows_skipped"])
	require.Equal(t, "absurd_time", etw["skip_reason"])
	require.Equal(t, "ok", etw["status"])
	require.Contains(t, etw["hint"], "rows in the last read were skipped, most as absurd_time")
}

// TestTablesConcurrent runs both tables at once, as osqueryd may, under the
// race detector.
func TestTablesConcurrent(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.AllSources)
	both := newTables(e, nil)

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = both.launches.Generate(t.Context(), table.QueryContext{})
			} else {
				_, errs[i] = both.sources.Generate(t.Context(), table.QueryContext{})
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "call %d", i)
	}
}

// TestCancelledGenerate returns the context's error.
func TestCancelledGenerate(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newTables(openEngine(t), nil).sources.Generate(ctx, table.QueryContext{})
	require.Error(t, err)
}
