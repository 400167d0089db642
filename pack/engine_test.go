package pack

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
	"github.com/svclaunch/svclaunch/internal/windowstest"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunchsources"
)

// osqueryEventsExpiry is osqueryd's default --events_expiry in seconds: the
// age at which buffered events are deleted.
const osqueryEventsExpiry = 3600

// The catalogued Empire PsExec launch: cmd.exe started by services.exe on
// WORKSTATION6 578 ms after 172.18.39.5 connected to it.
const (
	empireHost       = "WORKSTATION6.theshire.local"
	empireShortName  = "WORKSTATION6"
	empireHostAddr   = "172.18.39.6"
	empireChildPID   = "9028"
	empireParentPID  = "704"
	empireRemoteAddr = "172.18.39.5"
	empireRemotePort = "56608"
	empireLocalPort  = "49726"
	empireDelayMS    = "578"
	empireChildPath  = `C:\Windows\System32\cmd.exe`
)

// recordingEngine returns an engine holding a recording's rows, its clock
// set to the recording's newest event, with the extension's tables attached
// and interface_addresses listing the recorded host's own address.
func recordingEngine(t *testing.T, recording string) *engine.Engine {
	t.Helper()
	return recordingEngineWithAddresses(t, recording, empireHostAddr)
}

// recordingEngineWithAddresses is recordingEngine with interface_addresses
// listing hostAddresses.
func recordingEngineWithAddresses(t *testing.T, recording string, hostAddresses ...string) *engine.Engine {
	t.Helper()
	e := emptyEngine(t, hostAddresses...)

	batch, err := telemetry.LoadFile(t.Context(), testrecordings.Path(t, recording), telemetry.Options{})
	require.NoError(t, err)
	for name, rows := range batch.Rows {
		require.NoError(t, e.Insert(t.Context(), name, rows), "inserting %s rows", name)
	}
	require.NotZero(t, batch.Clock, "the recording has no time values")
	e.SetClock(batch.Clock)
	return e
}

// emptyEngine returns an engine with osquery's tables and the extension's
// tables attached, the Windows sources selected whatever the test machine
// runs, and interface_addresses listing hostAddresses.
func emptyEngine(t *testing.T, hostAddresses ...string) *engine.Engine {
	t.Helper()
	e, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })

	attachExtensionTables(t, e)
	insertInterfaceAddresses(t, e, hostAddresses)
	return e
}

// windowsHostEngine returns an engine holding the Empire PsExec recording
// as a Windows host with setup would store it, with the osquery_flags,
// osquery_registry and osquery_events rows of that host, the extension's
// tables attached, and interface_addresses listing the host's own address.
func windowsHostEngine(t *testing.T, setup windowstest.Setup) *engine.Engine {
	t.Helper()
	e := emptyEngine(t, empireHostAddr)

	batch, err := telemetry.LoadFile(t.Context(), testrecordings.Path(t, testrecordings.EmpirePsExec), telemetry.Options{})
	require.NoError(t, err)
	require.NoError(t, windowstest.Load(t.Context(), e, batch, setup, windowstest.EmpireServices))
	return e
}

// attachExtensionTables attaches remote_service_launches over the Windows
// sources and remote_service_launch_sources reporting on them, built as the
// extension builds them: the two tables share the engine as their querier,
// the discovery of osquery's tables and flags, and the read statistics.
// The tables run as if on the recorded host, which os.Hostname would name
// by its short name.
func attachExtensionTables(t *testing.T, e *engine.Engine) {
	t.Helper()
	launches := remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier:   e,
		Sources:   sources.Windows(),
		LocalHost: empireShortName,
		Discovery: sourcehealth.NewDiscovery(e, sourcehealth.DiscoveryOptions{}),
	})
	launchSources := remoteservicelaunchsources.New(remoteservicelaunchsources.ConfigFor(launches.Config()))
	attachPlugin(t, e, launches.Plugin())
	attachPlugin(t, e, launchSources.Plugin())
}

// insertInterfaceAddresses stores one interface_addresses row per address in
// the engine's osquery table, so the hunt can tell the host's side of a
// connection.
func insertInterfaceAddresses(t *testing.T, e *engine.Engine, addresses []string) {
	t.Helper()
	rows := make([]map[string]string, 0, len(addresses))
	for _, address := range addresses {
		rows = append(rows, map[string]string{"interface": "Ethernet", "address": address, "type": "dhcp", "friendly_name": "Ethernet"})
	}
	require.NoError(t, e.Insert(t.Context(), "interface_addresses", rows))
}

// attachPlugin makes a table plugin queryable in the engine through its
// osquery-facing side: the column routes and the "generate" call with
// osquery's query-context JSON, as osqueryd calls an extension.
func attachPlugin(t *testing.T, e *engine.Engine, plugin *table.Plugin) {
	t.Helper()

	var columns []engine.Column
	for _, route := range plugin.Routes() {
		options, err := strconv.Atoi(route["op"])
		require.NoError(t, err, "column %s options", route["name"])
		columns = append(columns, engine.Column{Name: route["name"], Type: route["type"], Options: options})
	}

	generate := func(ctx context.Context, queryContextJSON string) ([]map[string]string, error) {
		response := plugin.Call(ctx, osquery.ExtensionPluginRequest{"action": "generate", "context": queryContextJSON})
		if response.Status.Code != 0 {
			return nil, fmt.Errorf("table %s: %s", plugin.Name(), response.Status.Message)
		}
		return response.Response, nil
	}
	require.NoError(t, e.AttachTable(plugin.Name(), columns, generate))
}

func TestEveryQueryRunsInEngine(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)
	queries, err := Queries()
	require.NoError(t, err)

	for _, q := range queries {
		t.Run(q.Name, func(t *testing.T) {
			_, err := e.QueryRows(t.Context(), q.SQL)
			require.NoError(t, err)
		})
	}

	t.Run("discovery", func(t *testing.T) {
		_, err := e.QueryRows(t.Context(), DiscoveryQuery)
		require.NoError(t, err)
	})
}

func TestDiscoveryFindsLoadedExtension(t *testing.T) {
	t.Parallel()

	require.Equal(t, extension.Name, ExtensionName, "the discovery query must look for the name the extension registers")

	e := emptyEngine(t)
	rows, err := e.QueryRows(t.Context(), DiscoveryQuery)
	require.NoError(t, err)
	require.Empty(t, rows, "no extension loaded")

	require.NoError(t, e.Insert(t.Context(), "osquery_extensions", []map[string]string{
		{"uuid": "1", "name": "other", "type": "extension"},
		{"uuid": "2", "name": extension.Name, "type": "extension"},
	}))
	rows, err = e.QueryRows(t.Context(), DiscoveryQuery)
	require.NoError(t, err)
	require.Len(t, rows, 1)
}

func TestDetectionFindsEmpirePsExec(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)
	q, err := Lookup(detectionName)
	require.NoError(t, err)

	rows, err := e.QueryRows(t.Context(), q.SQL)
	require.NoError(t, err)
	require.Len(t, rows, 1)

	row := rows[0]
	require.Equal(t, empireHost, row["host"])
	require.Equal(t, empireChildPID, row["pid"])
	require.Equal(t, empireChildPath, row["path"])
	require.Equal(t, empireParentPID, row["parent"])
	require.Equal(t, empireRemoteAddr, row["remote_address"])
	require.Equal(t, empireRemotePort, row["remote_port"])
	require.Equal(t, empireLocalPort, row["local_port"])
	require.Equal(t, empireDelayMS, row["delay_ms"])
}

func TestHuntFindsEmpirePsExec(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)
	q, err := Lookup(huntName)
	require.NoError(t, err)

	rows, err := e.QueryRows(t.Context(), q.SQL)
	require.NoError(t, err)
	require.Len(t, rows, 1)

	// Sysmon's event 1 in this recording lacks ProcessId, so the hunt finds
	// the launch through ProcessGuid and reports the pid as unknown.
	row := rows[0]
	require.Equal(t, empireHost, row["host"])
	require.Equal(t, "-1", row["pid"])
	require.Equal(t, empireChildPath, row["path"])
	require.Equal(t, empireParentPID, row["parent"])
	require.Equal(t, empireRemoteAddr, row["remote_address"])
	require.Equal(t, empireRemotePort, row["remote_port"])
	require.Equal(t, empireLocalPort, row["local_port"])
	require.Equal(t, empireDelayMS, row["delay_ms"])
	require.Equal(t, "2020-09-20T16:16:56.597Z", row["datetime"])
	require.Equal(t, "2020-09-20T16:16:56.019Z", row["connection_datetime"])
	require.Equal(t, "ms", row["time_precision"])
	require.Equal(t, "1", row["connection_count"])
}

func TestHuntOrientsAndExcludesOwnAddresses(t *testing.T) {
	t.Parallel()

	q, err := Lookup(huntName)
	require.NoError(t, err)

	tests := []struct {
		name       string
		addresses  []string
		wantRemote []string
	}{
		// Without the host's addresses the hunt takes Sysmon's Source side
		// as the peer, which is right for this recording's Sysmon version.
		{"no addresses", nil, []string{empireRemoteAddr}},
		{"host address", []string{empireHostAddr}, []string{empireRemoteAddr}},
		// A peer that is one of the host's own addresses is not remote.
		{"peer is local", []string{empireHostAddr, empireRemoteAddr}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := recordingEngineWithAddresses(t, testrecordings.EmpirePsExec, tt.addresses...)
			rows, err := e.QueryRows(t.Context(), q.SQL)
			require.NoError(t, err)

			var remotes []string
			for _, row := range rows {
				remotes = append(remotes, row["remote_address"])
			}
			require.Equal(t, tt.wantRemote, remotes)
		})
	}
}

func TestHuntColumnsMatchTable(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)
	q, err := Lookup(huntName)
	require.NoError(t, err)

	rows, err := e.QueryRows(t.Context(), q.SQL)
	require.NoError(t, err)
	require.NotEmpty(t, rows)

	var want []string
	for _, column := range remoteservicelaunches.Columns() {
		want = append(want, column.Name)
	}
	require.ElementsMatch(t, want, keysOf(rows[0]))
}

func TestQueriesFindNothingWithoutLaunch(t *testing.T) {
	t.Parallel()

	// OpenSCManager reaches services.exe over the network but starts
	// nothing, and a reboot starts many services without a connection.
	for _, recording := range []string{testrecordings.EmpireFindLocalAdmin, testrecordings.EmpireRunKeysReboot} {
		t.Run(recording, func(t *testing.T) {
			e := recordingEngine(t, recording)
			for _, name := range []string{detectionName, huntName} {
				q, err := Lookup(name)
				require.NoError(t, err)
				rows, err := e.QueryRows(t.Context(), q.SQL)
				require.NoError(t, err)
				require.Empty(t, rows, name)
			}
		})
	}
}

// sysmonPairs selects Sysmon connections (event 3) and process creations
// (event 1) of one recording with each event's own time in milliseconds, so
// that CAR's pseudocode can be written over them.
const sysmonPairs = `
WITH
  flow AS (
    SELECT
      json_extract(data, '$.EventData.ProcessId') AS pid,
      json_extract(data, '$.EventData.ProcessGuid') AS guid,
      CAST(round((julianday(json_extract(data, '$.EventData.UtcTime')) - 2440587.5) * 86400000.0) AS INTEGER) AS ms
    FROM windows_events
    WHERE eventid = 3 AND lower(source) = 'microsoft-windows-sysmon/operational'
      AND lower(json_extract(data, '$.EventData.Initiated')) = 'false'
  ),
  service AS (
    SELECT
      json_extract(data, '$.EventData.ProcessId') AS pid,
      json_extract(data, '$.EventData.ParentProcessGuid') AS parent_guid,
      json_extract(data, '$.EventData.Image') AS path,
      CAST(round((julianday(json_extract(data, '$.EventData.UtcTime')) - 2440587.5) * 86400000.0) AS INTEGER) AS ms
    FROM windows_events
    WHERE eventid = 1 AND lower(source) = 'microsoft-windows-sysmon/operational'
  )
`

func TestCARPseudocodeMissesLaunch(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)

	t.Run("pid join matches nothing", func(t *testing.T) {
		// CAR joins flow.pid = service.pid: the connection's process (the
		// parent) with the child itself. Sysmon's ProcessId is missing
		// here as well, and NULL equals nothing.
		rows, err := e.QueryRows(t.Context(), sysmonPairs+`
SELECT service.path, service.ms - flow.ms AS delay_ms
FROM flow JOIN service ON flow.pid = service.pid
WHERE flow.ms < service.ms < flow.ms + 1000`)
		require.NoError(t, err)
		require.Empty(t, rows)
	})

	t.Run("chained comparison is always true", func(t *testing.T) {
		rows, err := e.QueryRows(t.Context(), "SELECT 100 < 50 < 101 AS chained, (100 < 50 AND 50 < 101) AS meant")
		require.NoError(t, err)
		require.Equal(t, "1", rows[0]["chained"])
		require.Equal(t, "0", rows[0]["meant"])

		// A window of 5 to 6 s excludes this 578 ms launch, yet the chained
		// form still returns it: (a < b) < c compares 0 or 1 with an epoch
		// value, so it constrains nothing.
		rows, err = e.QueryRows(t.Context(), sysmonPairs+`
SELECT service.path, service.ms - flow.ms AS delay_ms
FROM flow JOIN service ON flow.guid = service.parent_guid
WHERE flow.ms + 5000 < service.ms < flow.ms + 6000`)
		require.NoError(t, err)
		require.Len(t, rows, 1, "the chained window should let the 578 ms pair through")
		require.Equal(t, empireDelayMS, rows[0]["delay_ms"])

		rows, err = e.QueryRows(t.Context(), sysmonPairs+`
SELECT service.path
FROM flow JOIN service ON flow.guid = service.parent_guid
WHERE flow.ms + 5000 < service.ms AND service.ms < flow.ms + 6000`)
		require.NoError(t, err)
		require.Empty(t, rows, "two explicit comparisons apply the window")

		rows, err = e.QueryRows(t.Context(), sysmonPairs+`
SELECT service.path, service.ms - flow.ms AS delay_ms
FROM flow JOIN service ON flow.guid = service.parent_guid
WHERE service.ms - flow.ms >= 0 AND service.ms - flow.ms <= 1000`)
		require.NoError(t, err)
		require.Len(t, rows, 1, "the corrected window keeps the catalogued launch")
		require.Equal(t, empireDelayMS, rows[0]["delay_ms"])
	})

	t.Run("strict bounds on whole seconds", func(t *testing.T) {
		// Read literally on osquery's whole-second times, a < b AND
		// b < a + 1 has no integer solution, and this launch's connection
		// and child fall in the same second.
		rows, err := e.QueryRows(t.Context(), sysmonPairs+`
SELECT service.path
FROM flow JOIN service ON flow.guid = service.parent_guid
WHERE flow.ms / 1000 < service.ms / 1000 AND service.ms / 1000 < flow.ms / 1000 + 1`)
		require.NoError(t, err)
		require.Empty(t, rows)
	})
}

func TestHealthQueryOnWindowsSetups(t *testing.T) {
	t.Parallel()

	q, err := Lookup(healthName)
	require.NoError(t, err)

	// withoutETWTable removes process_etw_events from osquery_registry, as
	// on an osquery older than 5.8.0, which lacks the table.
	withoutETWTable := func(t *testing.T, e *engine.Engine) {
		t.Helper()
		_, err := e.QueryRows(t.Context(), "DELETE FROM osquery_registry WHERE name = 'process_etw_events'")
		require.NoError(t, err)
	}

	tests := []struct {
		name  string
		setup windowstest.Setup
		edit  func(*testing.T, *engine.Engine)
		// want maps each source the query returns to its status.
		want map[string]string
		// wantHints holds a part of the hint of each source in want.
		wantHints map[string]string
	}{
		{
			name:  "all sources",
			setup: windowstest.AllSources,
			want:  map[string]string{},
		},
		{
			name:  "sysmon only",
			setup: windowstest.SysmonOnly,
			want:  map[string]string{"security": "disabled", "etw": "disabled"},
			wantHints: map[string]string{
				"security": "add Security to --windows_event_channels",
				"etw":      "set --enable_process_etw_events=true",
			},
		},
		{
			name:      "etw with security 5156",
			setup:     windowstest.ETWWithSecurity,
			want:      map[string]string{"sysmon": "disabled"},
			wantHints: map[string]string{"sysmon": "add Microsoft-Windows-Sysmon/Operational to --windows_event_channels"},
		},
		{
			name:  "osquery without process_etw_events",
			setup: windowstest.SecurityOnly,
			edit:  withoutETWTable,
			want:  map[string]string{"sysmon": "disabled", "etw": "missing"},
			wantHints: map[string]string{
				"sysmon": "add Microsoft-Windows-Sysmon/Operational to --windows_event_channels",
				"etw":    "process_etw_events needs osquery 5.8 or later",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := windowsHostEngine(t, tt.setup)
			if tt.edit != nil {
				tt.edit(t, e)
			}
			// The table reports every Windows source, so an empty health
			// result means all are ok rather than that the table is empty.
			all, err := e.QueryRows(t.Context(), "SELECT source, status FROM remote_service_launch_sources")
			require.NoError(t, err)
			require.Len(t, all, len(sources.Windows()))
			notOK := map[string]string{}
			for _, row := range all {
				if row["status"] != "ok" {
					notOK[row["source"]] = row["status"]
				}
			}
			require.Equal(t, tt.want, notOK)

			rows, err := e.QueryRows(t.Context(), q.SQL)
			require.NoError(t, err)

			got := map[string]string{}
			for _, row := range rows {
				got[row["source"]] = row["status"]
				require.ElementsMatch(t, columnNames(remoteservicelaunchsources.Columns()), keysOf(row), "SELECT * returns every column")
				require.Contains(t, row["hint"], tt.wantHints[row["source"]], "hint of %s", row["source"])
			}
			require.Len(t, got, len(rows), "one row per source")
			require.Equal(t, tt.want, got)
		})
	}
}

// TestHealthQueryOnRecordingAlone runs the health query on the recording
// loaded without osquery's own tables, as the other tests here load it:
// whether osquery has each table and which flags are on is unknown, so
// every source is counted. The recording holds no ETW events.
func TestHealthQueryOnRecordingAlone(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)
	q, err := Lookup(healthName)
	require.NoError(t, err)

	rows, err := e.QueryRows(t.Context(), q.SQL)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, "etw", rows[0]["source"])
	require.Equal(t, "empty", rows[0]["status"])
	require.Equal(t, "-1", rows[0]["table_exists"], "osquery_registry is empty, so the table's presence is unknown")
	require.Equal(t, "0", rows[0]["events"])
	require.Contains(t, rows[0]["hint"], "no ProcessStart event in the last 3600 s")
}

func TestDetectionLookbackCoversTwoIntervals(t *testing.T) {
	t.Parallel()

	queries, err := Queries()
	require.NoError(t, err)

	// Without a time constraint the table reads DefaultLookback of events,
	// which osquery keeps for --events_expiry. A detection must stay in the
	// result for two runs, so a late event or a delayed run still logs it.
	lookback := int(remoteservicelaunches.DefaultLookback.Seconds())
	require.LessOrEqual(t, lookback, osqueryEventsExpiry, "the table cannot read events osquery has expired")
	for _, q := range queries {
		if !strings.Contains(q.SQL, "FROM remote_service_launches") || !q.Scheduled() {
			continue
		}
		require.GreaterOrEqual(t, lookback, 2*q.Interval, "query %s", q.Name)
	}
}

// rowKey renders a row with sorted keys, the identity osquery's multiset
// of result rows compares.
func rowKey(t *testing.T, row map[string]string) string {
	t.Helper()
	data, err := json.Marshal(row) // encoding/json sorts map keys
	require.NoError(t, err)
	return string(data)
}

// differentialAdded returns the rows osquery logs as "added": the current
// rows minus the previous ones as multisets (osquery/core/sql/diff_results.cpp).
func differentialAdded(t *testing.T, previous, current []map[string]string) []map[string]string {
	t.Helper()
	remaining := make(map[string]int)
	for _, row := range previous {
		remaining[rowKey(t, row)]++
	}

	var added []map[string]string
	for _, row := range current {
		key := rowKey(t, row)
		if remaining[key] > 0 {
			remaining[key]--
			continue
		}
		added = append(added, row)
	}
	return added
}

func TestDifferentialAddedIsMultisetDifference(t *testing.T) {
	t.Parallel()

	a := map[string]string{"pid": "1"}
	b := map[string]string{"pid": "2"}

	require.Len(t, differentialAdded(t, nil, []map[string]string{a, a}), 2)
	require.Len(t, differentialAdded(t, []map[string]string{a}, []map[string]string{a, a}), 1)
	require.Empty(t, differentialAdded(t, []map[string]string{a, b}, []map[string]string{b, a}))
}

func TestDetectionRepeatsNothingWhenIdle(t *testing.T) {
	t.Parallel()

	e := recordingEngine(t, testrecordings.EmpirePsExec)
	q, err := Lookup(detectionName)
	require.NoError(t, err)

	// Run the query on three consecutive schedule ticks with no new events.
	clock, err := e.QueryRows(t.Context(), "SELECT unix_time FROM time")
	require.NoError(t, err)
	start, err := strconv.ParseInt(clock[0]["unix_time"], 10, 64)
	require.NoError(t, err)

	var previous []map[string]string
	for run := range 3 {
		e.SetClock(start + int64(run*q.Interval))
		current, err := e.QueryRows(t.Context(), q.SQL)
		require.NoError(t, err)

		added := differentialAdded(t, previous, current)
		if run == 0 {
			require.Len(t, added, 1, "the first run logs the launch")
		} else {
			require.Empty(t, added, "run %d logged a launch again", run)
			require.Len(t, current, 1, "run %d: the launch must stay inside the lookback", run)
		}
		previous = current
	}
}

func columnNames(columns []table.ColumnDefinition) []string {
	names := make([]string, 0, len(columns))
	for _, column := range columns {
		names = append(names, column.Name)
	}
	return names
}

func keysOf(row map[string]string) []string {
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
