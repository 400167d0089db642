package remoteservicelaunches_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

const (
	// empireChildSecond is 2020-09-20 16:16:56 UTC, the second in which
	// the Empire PsExec child started.
	empireChildSecond = 1600618616
	empireCmdline     = `C:\windows\system32\cmd.exe /C start /b C:\Windows\System32\WindowsPowershell\v1.0\powershell -noP -sta -w 1 -enc  SQBmACgAJABQAFMAVgBF`
)

// empireRow is the detection of the Empire PsExec recording with Sysmon and
// Security events merged, except the long command line.
var empireRow = map[string]string{
	"time":                "1600618616",
	"datetime":            "2020-09-20T16:16:56.597Z",
	"host":                "WORKSTATION6.theshire.local",
	"pid":                 "9028",
	"path":                `C:\Windows\System32\cmd.exe`,
	"username":            `NT AUTHORITY\SYSTEM`,
	"parent":              "704",
	"parent_path":         `C:\Windows\System32\services.exe`,
	"connection_time":     "1600618616",
	"connection_datetime": "2020-09-20T16:16:56.019Z",
	"protocol":            "tcp",
	"local_address":       "172.18.39.6",
	"local_port":          "49726",
	"remote_address":      "172.18.39.5",
	"remote_port":         "56608",
	"delay_ms":            "578",
	"time_precision":      "ms",
	"connection_count":    "1",
	"process_sources":     "security,sysmon",
	"connection_sources":  "security,sysmon",
}

// requireEmpireRow checks a row against want and the command line prefix.
func requireEmpireRow(t *testing.T, want, got map[string]string) {
	t.Helper()

	require.True(t, strings.HasPrefix(got["cmdline"], empireCmdline), "cmdline %.120q", got["cmdline"])
	withoutCmdline := map[string]string{}
	for k, v := range got {
		if k != "cmdline" {
			withoutCmdline[k] = v
		}
	}
	require.Equal(t, want, withoutCmdline)
}

func TestGenerateEmpirePsExec(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, nil)
	rows, err := windowsTable(e).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	requireEmpireRow(t, empireRow, rows[0])
}

// TestGenerateReversedRowOrder inserts the events newest first: the
// decoders and the detector must not depend on the order osquery returns
// rows in, which already differs from event order in the recording.
func TestGenerateReversedRowOrder(t *testing.T) {
	t.Parallel()

	e := openEngineOrdered(t, testrecordings.EmpirePsExec, nil, true)
	rows, err := windowsTable(e).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	requireEmpireRow(t, empireRow, rows[0])
}

// TestGenerateSecurityOnly drops the Sysmon events: Security alone finds the
// launch at whole-second precision.
func TestGenerateSecurityOnly(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, withoutChannel(sources.SysmonChannel))
	rows, err := windowsTable(e).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))

	want := cloneRow(empireRow)
	want["datetime"] = "2020-09-20T16:16:56Z"
	want["connection_datetime"] = "2020-09-20T16:16:56Z"
	want["delay_ms"] = "0"
	want["time_precision"] = "s"
	want["process_sources"] = "security"
	want["connection_sources"] = "security"
	requireEmpireRow(t, want, rows[0])
}

// TestGenerateSysmonOnly drops the Security events. The forwarder dropped
// ProcessId from the Sysmon events, so the child's pid is -1; the parent's
// comes from ParentProcessId and the join from the process GUIDs.
func TestGenerateSysmonOnly(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, withoutChannel(sources.SecurityChannel))
	rows, err := windowsTable(e).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))

	want := cloneRow(empireRow)
	want["pid"] = strconv.FormatInt(detect.UnknownPID, 10)
	want["process_sources"] = "sysmon"
	want["connection_sources"] = "sysmon"
	requireEmpireRow(t, want, rows[0])
}

func TestGenerateNoDetection(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		recording string
	}{
		{name: "find_localadmin without a child", recording: testrecordings.EmpireFindLocalAdmin},
		{name: "reboot", recording: testrecordings.EmpireRunKeysReboot},
		{name: "psexec over SMB only", recording: testrecordings.MeterpreterPsExecJSONL},
		{name: "boot and local privilege escalation", recording: testrecordings.UnquotedServiceJSONL},
		{name: "benign desktop", recording: testrecordings.BenignSysmonJSONL},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := openEngine(t, tt.recording, nil)
			q := &recordingQuerier{next: e}
			rows, err := windowsTable(q).Generate(t.Context(), table.QueryContext{})
			require.NoError(t, err)
			require.Empty(t, rows, rowJSON(rows))
			require.Len(t, q.sent(), 4, "the time query and one query per source")
		})
	}
}

// TestGenerateThroughSQL runs the table as osqueryd would: attached to the
// engine, queried with SQL, with SQLite passing the time constraint.
func TestGenerateThroughSQL(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, nil)
	q := &recordingQuerier{next: e}
	attach(t, e, windowsTable(q))

	tests := []struct {
		where string
		rows  int
	}{
		{where: "time >= 1600618616", rows: 1},
		{where: "time >= 1600618617", rows: 0},
		{where: "time > 1600618615 AND time <= 1600618616", rows: 1},
		{where: "time = 1600618616", rows: 1},
		{where: "time < 1600618616", rows: 0},
		{where: "time >= 1600618616 AND remote_port = 56608", rows: 1},
	}

	for _, tt := range tests {
		rows, err := e.QueryRows(t.Context(), "SELECT * FROM remote_service_launches WHERE "+tt.where)
		require.NoError(t, err, tt.where)
		require.Len(t, rows, tt.rows, "%s: %s", tt.where, rowJSON(rows))
		if tt.rows == 1 {
			requireEmpireRow(t, empireRow, rows[0])
		}
	}

	for _, sql := range q.sent() {
		if strings.Contains(sql, "windows_events") {
			require.Contains(t, sql, " time >= ")
		}
	}
}

// TestGenerateSubQueries checks the statements sent. A time constraint
// yields one statement per source and no clock query. Without one, the
// clock query comes first and the lower bound is one lookback before it.
func TestGenerateSubQueries(t *testing.T) {
	t.Parallel()

	e := openEmptyEngine(t)
	e.SetClock(1600620000)

	constrained := &recordingQuerier{next: e}
	_, err := windowsTable(constrained).Generate(t.Context(), timeConstraint(table.OperatorGreaterThanOrEquals, strconv.Itoa(empireChildSecond)))
	require.NoError(t, err)
	require.Equal(t, []string{
		"SELECT time, datetime, source, computer_name, eventid, data FROM windows_events WHERE time >= 1600618555 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3) LIMIT 100001",
		"SELECT time, datetime, source, computer_name, eventid, data FROM windows_events WHERE time >= 1600618555 AND lower(source) = 'security' AND eventid IN (4688,5156) LIMIT 100001",
		"SELECT type, pid, ppid, path, cmdline, username, time, time_windows, header_pid, process_sequence_number, parent_process_sequence_number FROM process_etw_events WHERE time >= 1600618555 AND type = 'ProcessStart' LIMIT 100001",
	}, constrained.sent())

	bounded := &recordingQuerier{next: e}
	_, err = windowsTable(bounded).Generate(t.Context(), timeConstraint(table.OperatorEquals, strconv.Itoa(empireChildSecond)))
	require.NoError(t, err)
	require.Len(t, bounded.sent(), 3)
	require.Contains(t, bounded.sent()[0], "WHERE time >= 1600618555 AND time <= 1600618676 AND ")

	unconstrained := &recordingQuerier{next: e}
	_, err = windowsTable(unconstrained).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	sent := unconstrained.sent()
	require.Len(t, sent, 4)
	require.Equal(t, "SELECT unix_time FROM time", sent[0])
	for _, sql := range sent[1:] {
		require.Contains(t, sql, "WHERE time >= 1600616400 AND ")
	}
}

func TestGenerateEmptyTimeRange(t *testing.T) {
	t.Parallel()

	q := &recordingQuerier{next: openEmptyEngine(t)}
	qc := table.QueryContext{Constraints: map[string]table.ConstraintList{
		"time": {Affinity: table.ColumnTypeBigInt, Constraints: []table.Constraint{
			{Operator: table.OperatorGreaterThan, Expression: "200"},
			{Operator: table.OperatorLessThan, Expression: "100"},
		}},
	}}
	rows, err := windowsTable(q).Generate(t.Context(), qc)
	require.NoError(t, err)
	require.Empty(t, rows)
	require.Empty(t, q.sent(), "no time satisfies the constraints, so nothing is read")
}

// TestGenerateSourceFailure checks that a failing source is skipped: the
// other source still finds the launch, and only when every source fails
// does Generate return an error.
func TestGenerateSourceFailure(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, nil)

	sysmonFails := &recordingQuerier{next: e, fail: "microsoft-windows-sysmon/operational"}
	rows, err := windowsTable(sysmonFails).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	require.Equal(t, "9028", rows[0]["pid"])
	require.Equal(t, "security", rows[0]["process_sources"])

	// Without windows_events only the ETW process starts remain, and no
	// source of connections: the detection is blind and must report it.
	connectionsFail := &recordingQuerier{next: e, fail: "windows_events"}
	_, err = windowsTable(connectionsFail).Generate(t.Context(), table.QueryContext{})
	require.Error(t, err)
	require.ErrorContains(t, err, "no source of inbound connections could be read")
	require.ErrorContains(t, err, "sysmon: querying windows_events")
	require.ErrorContains(t, err, "security: querying windows_events")
	require.ErrorContains(t, err, "remote_service_launch_sources")

	allFail := &recordingQuerier{next: e, fail: "_events"}
	_, err = windowsTable(allFail).Generate(t.Context(), table.QueryContext{})
	require.Error(t, err)
	require.ErrorContains(t, err, "reading every event source failed")
	require.ErrorContains(t, err, "etw: querying process_etw_events")
}

// TestGenerateErrorThroughPlugin checks the message osquery shows when
// every source fails.
func TestGenerateErrorThroughPlugin(t *testing.T) {
	t.Parallel()

	e := openEmptyEngine(t)
	attach(t, e, windowsTable(&recordingQuerier{next: e, fail: "_events"}))

	_, err := e.QueryRows(t.Context(), "SELECT * FROM remote_service_launches WHERE time >= 1")
	require.Error(t, err)
	require.ErrorContains(t, err, "error generating table: reading every event source failed")
}

// TestGenerateWallClockFallback checks that a missing time table falls back
// to the wall clock instead of failing.
func TestGenerateWallClockFallback(t *testing.T) {
	t.Parallel()

	q := &recordingQuerier{next: openEmptyEngine(t), fail: "unix_time"}
	rows, err := windowsTable(q).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Empty(t, rows)

	sent := q.sent()
	require.Len(t, sent, 4)
	require.Contains(t, sent[1], "time >= ")
	require.NotContains(t, sent[1], "time >= (-", "the bound is an hour before the wall clock, not before 0")
}

// TestGenerateStableAndConcurrent runs Generate concurrently and checks that
// every run returns the same rows: scheduled queries log differences
// between runs, so nothing may change while nothing happened.
func TestGenerateStableAndConcurrent(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, nil)
	tbl := windowsTable(e)

	const runs = 4
	results := make([][]map[string]string, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			results[i], errs[i] = tbl.Generate(t.Context(), table.QueryContext{})
		})
	}
	wg.Wait()

	for i := range runs {
		require.NoError(t, errs[i])
		require.Equal(t, results[0], results[i])
	}
	require.Len(t, results[0], 1)
}

// TestGenerateUnixPair detects a shell started by sshd after an accepted
// connection, from process_events and socket_events rows, when sshd is
// configured as the parent. The default parent, services.exe, finds none.
func TestGenerateUnixPair(t *testing.T) {
	t.Parallel()

	e := openEmptyEngine(t)
	require.NoError(t, e.Insert(t.Context(), "socket_events", []map[string]string{
		{
			"action": "accept", "pid": "812", "path": "/usr/sbin/sshd", "family": "2", "protocol": "6", "fd": "4",
			"local_address": "10.0.0.5", "local_port": "22", "remote_address": "10.0.0.9", "remote_port": "50123",
			"time": "1700000001", "uptime": "5000",
		},
		{
			"action": "connect", "pid": "900", "path": "/usr/bin/curl", "family": "2", "protocol": "6", "fd": "3",
			"local_address": "10.0.0.5", "local_port": "41000", "remote_address": "10.0.0.9", "remote_port": "443",
			"time": "1700000001", "uptime": "5000",
		},
	}))
	require.NoError(t, e.Insert(t.Context(), "process_events", []map[string]string{
		{"pid": "4242", "parent": "812", "path": "/bin/sh", "cmdline": "sh -c id", "time": "1700000002", "uptime": "5001"},
		{"pid": "4243", "parent": "1", "path": "/bin/true", "cmdline": "true", "time": "1700000002", "uptime": "5001"},
	}))
	e.SetClock(1700000100)

	config := remoteservicelaunches.Config{Querier: e, Sources: sources.Unix("web01")}
	rows, err := remoteservicelaunches.New(config).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Empty(t, rows, "sshd is not the service control manager")

	config.Options = detect.Options{ParentNames: []string{"sshd"}}
	rows, err = remoteservicelaunches.New(config).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{
		"time": "1700000002", "datetime": "2023-11-14T22:13:22Z", "host": "web01",
		"pid": "4242", "path": "/bin/sh", "cmdline": "sh -c id", "username": "",
		"parent": "812", "parent_path": "/usr/sbin/sshd",
		"connection_time": "1700000001", "connection_datetime": "2023-11-14T22:13:21Z",
		"protocol": "tcp", "local_address": "10.0.0.5", "local_port": "22",
		"remote_address": "10.0.0.9", "remote_port": "50123",
		"delay_ms": "1000", "time_precision": "s", "connection_count": "1",
		"process_sources": "process_events", "connection_sources": "socket_events",
	}}, rows)
}

// TestGenerateNoSources checks the error for an empty source list.
func TestGenerateNoSources(t *testing.T) {
	t.Parallel()

	tbl := remoteservicelaunches.New(remoteservicelaunches.Config{Querier: openEmptyEngine(t), Sources: []sources.Source{}})
	_, err := tbl.Generate(t.Context(), timeConstraint(table.OperatorGreaterThanOrEquals, "1"))
	require.Error(t, err)
	require.ErrorContains(t, err, "no event sources configured")
}

// TestGenerateCancelled checks that a cancelled context fails every source.
func TestGenerateCancelled(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	_, err := windowsTable(openEmptyEngine(t)).Generate(ctx, timeConstraint(table.OperatorGreaterThanOrEquals, "1"))
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled), "error %v", err)
}

func cloneRow(row map[string]string) map[string]string {
	out := make(map[string]string, len(row))
	for k, v := range row {
		out[k] = v
	}
	return out
}
