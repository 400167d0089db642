package remoteservicelaunches_test

import (
	"strings"
	"testing"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
	"github.com/svclaunch/svclaunch/internal/windowstest"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// empireShortName is the name the operating system reports for the
// recording's WORKSTATION6.theshire.local, which the ETW events take.
const empireShortName = "WORKSTATION6"

// setupEngine returns an engine holding the Empire PsExec recording as a
// host with setup stores it.
func setupEngine(t *testing.T, setup windowstest.Setup, services windowstest.ServicesProcess) *engine.Engine {
	t.Helper()

	e := openEmptyEngine(t)
	require.NoError(t, windowstest.Load(t.Context(), e, loadBatch(t, testrecordings.EmpirePsExec), setup, services))
	return e
}

// localTable returns the table over the Windows sources as it runs on
// WORKSTATION6, reading q, with cfg's other fields.
func localTable(q osq.Querier, cfg remoteservicelaunches.Config) *remoteservicelaunches.Table {
	cfg.Querier = q
	cfg.Sources = sources.Windows()
	cfg.LocalHost = empireShortName
	return remoteservicelaunches.New(cfg)
}

// etwRow is the detection when ETW reports the child: its 100 ns time, the
// parent path from processes.
var etwRow = func() map[string]string {
	row := cloneRow(empireRow)
	row["datetime"] = "2020-09-20T16:16:56.5974321Z"
	return row
}()

func TestGenerateETWWithSecurityConnection(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.ETWWithSecurity, windowstest.EmpireServices)
	rows, err := localTable(e, remoteservicelaunches.Config{}).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))

	// Security 5156 has whole seconds, so the match is made on seconds and
	// the delay measured from the start of the connection's second.
	want := cloneRow(etwRow)
	want["connection_datetime"] = "2020-09-20T16:16:56Z"
	want["delay_ms"] = "597"
	want["time_precision"] = "s"
	want["process_sources"] = "etw"
	want["connection_sources"] = "security"
	requireEmpireRow(t, want, rows[0])
}

func TestGenerateETWWithSysmon(t *testing.T) {
	t.Parallel()

	// The forwarder dropped ProcessId from the Sysmon events: the pid
	// comes from ETW, and the connection is joined through the parent's
	// ProcessGuid, which the merged child keeps beside ETW's key.
	e := setupEngine(t, windowstest.Setup{Name: "sysmon and etw", Sysmon: true, ETW: true}, windowstest.EmpireServices)
	rows, err := localTable(e, remoteservicelaunches.Config{}).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))

	want := cloneRow(etwRow)
	want["process_sources"] = "etw,sysmon"
	want["connection_sources"] = "sysmon"
	requireEmpireRow(t, want, rows[0])
}

func TestGenerateAllSourcesOneRow(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.AllSources, windowstest.EmpireServices)
	rows, err := localTable(e, remoteservicelaunches.Config{}).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))

	want := cloneRow(etwRow)
	want["process_sources"] = "etw,security,sysmon"
	requireEmpireRow(t, want, rows[0])
}

// TestGenerateETWSequenceDefect stores the parent's sequence number in
// both columns, as osquery up to 5.23 does, and still finds the launch.
func TestGenerateETWSequenceDefect(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.ETWWithSecurity, windowstest.EmpireServices)
	_, err := e.QueryRows(t.Context(), "UPDATE process_etw_events SET process_sequence_number = parent_process_sequence_number")
	require.NoError(t, err)

	rows, err := localTable(e, remoteservicelaunches.Config{}).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	require.Equal(t, "9028", rows[0]["pid"])
}

// TestGenerateETWWithoutServicesProcess leaves processes empty: the parent
// path then comes from the connection, as Security writes it.
func TestGenerateETWWithoutServicesProcess(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.ETWWithSecurity, windowstest.EmpireServices)
	_, err := e.QueryRows(t.Context(), "DELETE FROM processes")
	require.NoError(t, err)

	q := &recordingQuerier{next: e}
	rows, err := localTable(q, remoteservicelaunches.Config{}).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	require.Equal(t, `\device\harddiskvolume2\windows\system32\services.exe`, rows[0]["parent_path"])
	require.Contains(t, q.sent(), "SELECT pid, name, path, start_time FROM processes WHERE lower(name) IN ('services.exe')")
}

// TestGenerateETWServicesRestarted gives services.exe a start time after
// the launch, as after a reboot that reused pid 704: the child is not
// attributed to it, and the parent path comes from the connection.
func TestGenerateETWServicesRestarted(t *testing.T) {
	t.Parallel()

	restarted := windowstest.EmpireServices
	restarted.StartTime = empireChildSecond + 60
	e := setupEngine(t, windowstest.ETWWithSecurity, restarted)

	rows, err := localTable(e, remoteservicelaunches.Config{}).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	require.Equal(t, `\device\harddiskvolume2\windows\system32\services.exe`, rows[0]["parent_path"])
}

// TestGenerateDiscoverySkipsDisabledSources runs on a Security-only host:
// the Sysmon query and the ETW query are not sent, and the skipped sources
// are recorded for the health table.
func TestGenerateDiscoverySkipsDisabledSources(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.SecurityOnly, windowstest.EmpireServices)
	q := &recordingQuerier{next: e}
	tbl := localTable(q, remoteservicelaunches.Config{Discovery: sourcehealth.NewDiscovery(q, sourcehealth.DiscoveryOptions{})})

	rows, err := tbl.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1, rowJSON(rows))
	require.Equal(t, "security", rows[0]["process_sources"])

	for _, sql := range q.sent() {
		require.NotContains(t, sql, "FROM process_etw_events", "ETW is disabled")
		require.NotContains(t, sql, "microsoft-windows-sysmon/operational", "the Sysmon channel is not subscribed")
	}

	stats := tbl.Config().Stats
	etw, ok := stats.Last("etw")
	require.True(t, ok)
	require.Equal(t, sourcehealth.StatusDisabled, etw.NotRead)
	security, ok := stats.Last("security")
	require.True(t, ok)
	require.Empty(t, security.NotRead)
	require.Positive(t, security.Rows)
}

// TestGenerateBlindHost enables only ETW: no source of connections is on,
// so the query fails and points to the sources table, instead of returning
// nothing.
func TestGenerateBlindHost(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.Setup{Name: "etw only", ETW: true}, windowstest.EmpireServices)
	tbl := localTable(e, remoteservicelaunches.Config{Discovery: sourcehealth.NewDiscovery(e, sourcehealth.DiscoveryOptions{})})

	_, err := tbl.Generate(t.Context(), table.QueryContext{})
	require.Error(t, err)
	require.ErrorContains(t, err, "no source of inbound connections could be read")
	require.ErrorContains(t, err, "SELECT * FROM remote_service_launch_sources")
	require.ErrorContains(t, err, "sysmon is disabled: set --enable_windows_events_publisher=true --enable_windows_events_subscriber=true")
}

// TestGenerateNothingEnabled turns every source off.
func TestGenerateNothingEnabled(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.Setup{Name: "nothing"}, windowstest.EmpireServices)
	q := &recordingQuerier{next: e}
	tbl := localTable(q, remoteservicelaunches.Config{Discovery: sourcehealth.NewDiscovery(q, sourcehealth.DiscoveryOptions{})})

	_, err := tbl.Generate(t.Context(), table.QueryContext{})
	require.Error(t, err)
	require.ErrorContains(t, err, "no source of process starts or inbound connections could be read")
	require.ErrorContains(t, err, "etw is disabled: set --enable_process_etw_events=true")
	for _, sql := range q.sent() {
		require.False(t, strings.Contains(sql, "FROM windows_events") || strings.Contains(sql, "FROM process_etw_events"), "no event table is read: %s", sql)
	}
}

// TestGenerateRecordsReadFailure checks that a failing source read reaches
// the statistics with its error.
func TestGenerateRecordsReadFailure(t *testing.T) {
	t.Parallel()

	e := setupEngine(t, windowstest.AllSources, windowstest.EmpireServices)
	tbl := localTable(&recordingQuerier{next: e, fail: "process_etw_events"}, remoteservicelaunches.Config{})
	rows, err := tbl.Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)
	require.Len(t, rows, 1)

	etw, ok := tbl.Config().Stats.Last("etw")
	require.True(t, ok)
	require.Contains(t, etw.Err, "querying process_etw_events")
}
