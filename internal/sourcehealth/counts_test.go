package sourcehealth_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

func TestCountQueryGolden(t *testing.T) {
	t.Parallel()

	tests := []struct {
		source string
		names  []string
		want   string
	}{
		{
			source: "sysmon", names: []string{"services.exe"},
			want: "SELECT eventid AS kind, count(*) AS events, max(time) AS newest, " +
				"(sum(CASE WHEN (substr(lower(json_extract(data, '$.EventData.Image')), (-13)) = '\\services.exe') THEN 1 ELSE 0 END)) AS parent_connections " +
				"FROM windows_events WHERE time >= 1600614000 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3) GROUP BY eventid",
		},
		{
			source: "sysmon",
			want: "SELECT eventid AS kind, count(*) AS events, max(time) AS newest " +
				"FROM windows_events WHERE time >= 1600614000 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3) GROUP BY eventid",
		},
		{
			source: "security", names: []string{"services.exe"},
			want: "SELECT eventid AS kind, count(*) AS events, max(time) AS newest, " +
				"(sum(CASE WHEN coalesce(json_extract(data, '$.EventData.CommandLine'), '') = '' THEN 1 ELSE 0 END)) AS without_cmdline " +
				"FROM windows_events WHERE time >= 1600614000 AND lower(source) = 'security' AND eventid IN (4688,5156) GROUP BY eventid",
		},
		{source: "etw", want: "SELECT type AS kind, count(*) AS events, max(time) AS newest FROM process_etw_events WHERE time >= 1600614000 GROUP BY type"},
		{source: "process_events", want: "SELECT count(*) AS events, max(time) AS newest FROM process_events WHERE time >= 1600614000"},
		{source: "socket_events", want: "SELECT action AS kind, count(*) AS events, max(time) AS newest FROM socket_events WHERE time >= 1600614000 GROUP BY action"},
	}
	for _, tt := range tests {
		got, err := sourcehealth.CountQuery(tt.source, 1600614000, tt.names)
		require.NoError(t, err, tt.source)
		require.Equal(t, tt.want, got, tt.source)
	}

	_, err := sourcehealth.CountQuery("bpf", 0, nil)
	require.ErrorContains(t, err, `counting events of source "bpf": unknown source`)
}

// countOn runs a source's count query on e and parses the rows.
func countOn(t *testing.T, e *engine.Engine, source string, lower int64) sourcehealth.Counts {
	t.Helper()

	query, err := sourcehealth.CountQuery(source, lower, []string{"services.exe"})
	require.NoError(t, err)
	rows, err := e.QueryRows(t.Context(), query)
	require.NoError(t, err)
	counts, err := sourcehealth.ParseCounts(source, rows)
	require.NoError(t, err)
	return counts
}

func windowsEvent(t *testing.T, channel string, eventID int, stored int64, data map[string]string) map[string]string {
	t.Helper()

	encoded, err := json.Marshal(map[string]any{"EventData": data})
	require.NoError(t, err)
	return map[string]string{
		"time": strconv.FormatInt(stored, 10), "datetime": "2020-09-20T16:16:56.5970000Z", "source": channel,
		"computer_name": "WORKSTATION6", "eventid": strconv.Itoa(eventID), "data": string(encoded),
	}
}

func TestCountsWindowsEvents(t *testing.T) {
	t.Parallel()

	e := openEngine(t)
	sysmonChannel := "Microsoft-Windows-Sysmon/Operational"
	insert(t, e, "windows_events",
		windowsEvent(t, sysmonChannel, 1, 100, map[string]string{"Image": `C:\Windows\System32\cmd.exe`}),
		windowsEvent(t, sysmonChannel, 3, 101, map[string]string{"Image": `C:\Windows\System32\services.exe`}),
		windowsEvent(t, sysmonChannel, 3, 102, map[string]string{"Image": `C:\Windows\System32\SERVICES.EXE`}),
		windowsEvent(t, sysmonChannel, 3, 103, map[string]string{"Image": `C:\Tools\myservices.exe`}),
		windowsEvent(t, sysmonChannel, 5, 104, map[string]string{"Image": `C:\Windows\System32\services.exe`}),
		windowsEvent(t, sysmonChannel, 3, 50, map[string]string{"Image": `C:\Windows\System32\services.exe`}),
		windowsEvent(t, "Security", 4688, 110, map[string]string{"CommandLine": "cmd.exe /c whoami"}),
		windowsEvent(t, "security", 4688, 111, map[string]string{"CommandLine": ""}),
		windowsEvent(t, "Security", 4688, 112, map[string]string{"NewProcessName": `C:\x.exe`}),
		windowsEvent(t, "Security", 4624, 113, map[string]string{}),
	)

	sysmon := countOn(t, e, "sysmon", 100)
	require.Equal(t, map[string]int64{"1": 1, "3": 3}, sysmon.ByKind, "event 5 and the event stored before the bound are left out")
	require.Equal(t, int64(2), sysmon.ParentConnections, "services.exe in either case, not myservices.exe")
	require.Equal(t, int64(103), sysmon.Newest)
	require.Equal(t, int64(4), sysmon.Total())
	require.Equal(t, int64(sourcehealth.NotCounted), sysmon.WithoutCmdline)

	security := countOn(t, e, "security", 100)
	require.Equal(t, map[string]int64{"4688": 3}, security.ByKind)
	require.Equal(t, int64(2), security.WithoutCmdline, "an empty and a missing command line")
	require.Equal(t, int64(112), security.Newest)
	require.Equal(t, int64(sourcehealth.NotCounted), security.ParentConnections)

	none := countOn(t, e, "sysmon", 200)
	require.Empty(t, none.ByKind)
	require.Equal(t, int64(0), none.ParentConnections, "no event 3 means no connection of services.exe")
	require.Equal(t, int64(0), none.Newest)
}

func TestCountsETWAndUnix(t *testing.T) {
	t.Parallel()

	e := openEngine(t)
	insert(t, e, "process_etw_events",
		map[string]string{"type": "ProcessStop", "pid": "1", "time": "100"},
		map[string]string{"type": "ProcessStop", "pid": "2", "time": "101"},
		map[string]string{"type": "ProcessStart", "pid": "3", "time": "102"},
	)
	insert(t, e, "socket_events",
		map[string]string{"action": "connect", "pid": "1", "time": "100"},
		map[string]string{"action": "accept", "pid": "2", "time": "105"},
	)

	etw := countOn(t, e, "etw", 0)
	require.Equal(t, map[string]int64{"ProcessStart": 1, "ProcessStop": 2}, etw.ByKind)
	require.Equal(t, int64(1), etw.Total(), "stops are not read by the detection")
	require.Equal(t, int64(102), etw.Newest)

	sockets := countOn(t, e, "socket_events", 0)
	require.Equal(t, map[string]int64{"accept": 1, "connect": 1}, sockets.ByKind)

	processes := countOn(t, e, "process_events", 0)
	require.Equal(t, map[string]int64{"": 0}, processes.ByKind, "an aggregate without GROUP BY returns one row")
	require.Equal(t, int64(0), processes.Newest)
}

func TestParseCountsInvalid(t *testing.T) {
	t.Parallel()

	_, err := sourcehealth.ParseCounts("etw", []map[string]string{{"kind": "ProcessStart", "events": "many"}})
	require.ErrorContains(t, err, `reading the etw event count: invalid count "many"`)
}

// TestCountsEmpirePsExec counts the recording's events: Sysmon logged
// services.exe's inbound connection, Security logged command lines.
func TestCountsEmpirePsExec(t *testing.T) {
	t.Parallel()

	batch, err := telemetry.LoadFile(context.Background(), testrecordings.Path(t, testrecordings.EmpirePsExec), telemetry.Options{})
	require.NoError(t, err)
	e := openEngine(t)
	for table, rows := range batch.Rows {
		insert(t, e, table, rows...)
	}

	sysmon := countOn(t, e, "sysmon", 0)
	require.Positive(t, sysmon.Kind("1"))
	require.Positive(t, sysmon.Kind("3"))
	require.Positive(t, sysmon.ParentConnections)

	security := countOn(t, e, "security", 0)
	require.Positive(t, security.Kind("4688"))
	require.Positive(t, security.Kind("5156"))
	require.Zero(t, security.WithoutCmdline)
}
