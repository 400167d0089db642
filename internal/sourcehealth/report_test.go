package sourcehealth_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/sourcehealth"
)

// availability returns the availability of a known source, usable unless
// edited.
func availability(t *testing.T, source string, edits ...func(*sourcehealth.Availability)) sourcehealth.Availability {
	t.Helper()

	r, ok := sourcehealth.RequirementOf(source)
	require.True(t, ok, source)
	a := sourcehealth.Availability{Requirement: r, TableExists: sourcehealth.Yes}
	for _, edit := range edits {
		edit(&a)
	}
	return a
}

func counts(byKind map[string]int64, edits ...func(*sourcehealth.Counts)) *sourcehealth.Counts {
	c := &sourcehealth.Counts{ByKind: byKind, Newest: 1600618616, ParentConnections: sourcehealth.NotCounted, WithoutCmdline: sourcehealth.NotCounted}
	for _, edit := range edits {
		edit(c)
	}
	return c
}

func TestEvaluateStatus(t *testing.T) {
	t.Parallel()

	missing := func(a *sourcehealth.Availability) {
		a.TableExists = sourcehealth.No
		a.Hint = a.MissingHint
	}
	disabled := func(a *sourcehealth.Availability) {
		a.Disabled = true
		a.Hint = "set --enable_process_etw_events=true in osquery's flags and restart osqueryd"
	}
	parents := func(n int64) func(*sourcehealth.Counts) {
		return func(c *sourcehealth.Counts) { c.ParentConnections = n }
	}
	withoutCmdline := func(n int64) func(*sourcehealth.Counts) {
		return func(c *sourcehealth.Counts) { c.WithoutCmdline = n }
	}

	tests := []struct {
		name     string
		evidence sourcehealth.Evidence
		status   string
		hint     string
		events   int64
	}{
		{
			name:     "etw missing",
			evidence: sourcehealth.Evidence{Availability: availability(t, "etw", missing)},
			status:   sourcehealth.StatusMissing, hint: "needs osquery 5.8 or later", events: sourcehealth.NotCounted,
		},
		{
			name:     "etw disabled",
			evidence: sourcehealth.Evidence{Availability: availability(t, "etw", disabled)},
			status:   sourcehealth.StatusDisabled, hint: "--enable_process_etw_events=true", events: sourcehealth.NotCounted,
		},
		{
			name:     "etw stops without starts",
			evidence: sourcehealth.Evidence{Availability: availability(t, "etw"), Counts: counts(map[string]int64{"ProcessStop": 812})},
			status:   sourcehealth.StatusError, hint: "process_etw_events has 812 ProcessStop events but no ProcessStart in the last 3600 s: a known osquery defect on Windows 11 24H2",
		},
		{
			name:     "etw nothing",
			evidence: sourcehealth.Evidence{Availability: availability(t, "etw"), Counts: counts(map[string]int64{})},
			status:   sourcehealth.StatusEmpty, hint: "no ProcessStart event in the last 3600 s",
		},
		{
			name:     "etw starts",
			evidence: sourcehealth.Evidence{Availability: availability(t, "etw"), Counts: counts(map[string]int64{"ProcessStart": 40, "ProcessStop": 38})},
			status:   sourcehealth.StatusOK, events: 40,
		},
		{
			name:     "sysmon nothing",
			evidence: sourcehealth.Evidence{Availability: availability(t, "sysmon"), Counts: counts(map[string]int64{}, parents(0))},
			status:   sourcehealth.StatusEmpty, hint: "no Sysmon event 1 or 3 in the last 3600 s: install Sysmon",
		},
		{
			name:     "sysmon without connections",
			evidence: sourcehealth.Evidence{Availability: availability(t, "sysmon"), Counts: counts(map[string]int64{"1": 500}, parents(0))},
			status:   sourcehealth.StatusEmpty, hint: "the Sysmon configuration does not log services.exe network connections", events: 500,
		},
		{
			name:     "sysmon without process creation",
			evidence: sourcehealth.Evidence{Availability: availability(t, "sysmon"), Counts: counts(map[string]int64{"3": 20}, parents(2))},
			status:   sourcehealth.StatusEmpty, hint: "no Sysmon event 1 in the last 3600 s", events: 20,
		},
		{
			name:     "sysmon without services.exe connections",
			evidence: sourcehealth.Evidence{Availability: availability(t, "sysmon"), Counts: counts(map[string]int64{"1": 500, "3": 20}, parents(0))},
			status:   sourcehealth.StatusOK, hint: "it does not log services.exe network connections", events: 520,
		},
		{
			name:     "sysmon complete",
			evidence: sourcehealth.Evidence{Availability: availability(t, "sysmon"), Counts: counts(map[string]int64{"1": 500, "3": 20}, parents(3))},
			status:   sourcehealth.StatusOK, events: 520,
		},
		{
			name:     "security nothing",
			evidence: sourcehealth.Evidence{Availability: availability(t, "security"), Counts: counts(map[string]int64{}, withoutCmdline(0))},
			status:   sourcehealth.StatusEmpty, hint: `auditpol /set /subcategory:"Process Creation" /success:enable and auditpol /set /subcategory:"Filtering Platform Connection" /success:enable`,
		},
		{
			name:     "security without 5156",
			evidence: sourcehealth.Evidence{Availability: availability(t, "security"), Counts: counts(map[string]int64{"4688": 30}, withoutCmdline(0))},
			status:   sourcehealth.StatusEmpty, hint: `no Security event 5156 in the last 3600 s: run auditpol /set /subcategory:"Filtering Platform Connection" /success:enable`, events: 30,
		},
		{
			name:     "security without 4688",
			evidence: sourcehealth.Evidence{Availability: availability(t, "security"), Counts: counts(map[string]int64{"5156": 9000}, withoutCmdline(0))},
			status:   sourcehealth.StatusEmpty, hint: "ProcessCreationIncludeCmdLine_Enabled", events: 9000,
		},
		{
			name:     "security without command lines",
			evidence: sourcehealth.Evidence{Availability: availability(t, "security"), Counts: counts(map[string]int64{"4688": 30, "5156": 9000}, withoutCmdline(30))},
			status:   sourcehealth.StatusOK, hint: "30 of 30 events 4688 have no command line: turn on the ProcessCreationIncludeCmdLine_Enabled policy", events: 9030,
		},
		{
			name:     "process_events nothing",
			evidence: sourcehealth.Evidence{Availability: availability(t, "process_events"), Counts: counts(map[string]int64{"": 0})},
			status:   sourcehealth.StatusEmpty, hint: "no process_events row",
		},
		{
			name:     "socket_events without accept",
			evidence: sourcehealth.Evidence{Availability: availability(t, "socket_events"), Counts: counts(map[string]int64{"connect": 7})},
			status:   sourcehealth.StatusEmpty, hint: "--audit_allow_accept_socket_events=true",
		},
		{
			name:     "socket_events nothing",
			evidence: sourcehealth.Evidence{Availability: availability(t, "socket_events"), Counts: counts(map[string]int64{})},
			status:   sourcehealth.StatusEmpty, hint: "--audit_allow_sockets=true",
		},
		{
			name: "count query failed",
			evidence: sourcehealth.Evidence{
				Availability: availability(t, "security"), CountErr: errors.New("query timed out"),
				Last: sourcehealth.Read{Rows: 10}, HasLast: true,
			},
			status: sourcehealth.StatusError, hint: "counting the events in windows_events failed", events: sourcehealth.NotCounted,
		},
		{
			name: "last read failed",
			evidence: sourcehealth.Evidence{
				Availability: availability(t, "security"), Counts: counts(map[string]int64{"4688": 1, "5156": 1}),
				Last: sourcehealth.Read{Err: "querying windows_events: timed out"}, HasLast: true,
			},
			status: sourcehealth.StatusError, hint: "the last read of windows_events by remote_service_launches failed", events: 2,
		},
		{
			name: "row cap reached",
			evidence: sourcehealth.Evidence{
				Availability: availability(t, "etw"), Counts: counts(map[string]int64{"ProcessStart": 100000}),
				Last: sourcehealth.Read{Rows: 100000, RowCap: 100000}, HasLast: true,
			},
			status: sourcehealth.StatusOK, hint: "stopped at its cap of 100000 rows", events: 100000,
		},
		{
			name: "rows skipped",
			evidence: sourcehealth.Evidence{
				Availability: availability(t, "etw"), Counts: counts(map[string]int64{"ProcessStart": 10}),
				Last: sourcehealth.Read{Rows: 10, Skipped: map[string]int{"bad_pid": 1, "absurd_time": 3}}, HasLast: true,
			},
			status: sourcehealth.StatusOK, hint: "4 of 10 rows in the last read were skipped, most as absurd_time", events: 10,
		},
		{
			name:     "not counted",
			evidence: sourcehealth.Evidence{Availability: availability(t, "etw")},
			status:   sourcehealth.StatusOK, events: sourcehealth.NotCounted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			tt.evidence.Lookback = time.Hour
			r := sourcehealth.Evaluate(tt.evidence)
			require.Equal(t, tt.status, r.Status, r.Hint)
			if tt.hint == "" {
				require.Empty(t, r.Hint)
			} else {
				require.Contains(t, r.Hint, tt.hint)
			}
			require.Equal(t, tt.events, r.Events)
			require.NotContains(t, r.Hint, "\n", "a hint is one line")
		})
	}
}

func TestReconcileCoveredRoles(t *testing.T) {
	t.Parallel()

	evaluate := func(source string, byKind map[string]int64) sourcehealth.Report {
		return sourcehealth.Evaluate(sourcehealth.Evidence{
			Availability: availability(t, source), Lookback: time.Hour,
			Counts: counts(byKind, func(c *sourcehealth.Counts) { c.ParentConnections, c.WithoutCmdline = 1, 0 }),
		})
	}

	// ETW provides the process starts that Security lacks.
	reports := []sourcehealth.Report{
		evaluate("security", map[string]int64{"5156": 900}),
		evaluate("etw", map[string]int64{"ProcessStart": 40}),
	}
	require.Equal(t, sourcehealth.RoleProcessStarts, reports[0].MissingRoles)
	sourcehealth.Reconcile(reports)
	require.Equal(t, sourcehealth.StatusOK, reports[0].Status)
	require.Contains(t, reports[0].Hint, "etw provides the process starts, so this is optional: no Security event 4688")
	require.Equal(t, sourcehealth.StatusOK, reports[1].Status)
	require.Empty(t, reports[1].Hint)

	// Nothing provides the connections that Sysmon lacks.
	reports = []sourcehealth.Report{
		evaluate("sysmon", map[string]int64{"1": 500}),
		evaluate("etw", map[string]int64{"ProcessStart": 40}),
	}
	sourcehealth.Reconcile(reports)
	require.Equal(t, sourcehealth.StatusEmpty, reports[0].Status)
	require.Contains(t, reports[0].Hint, "does not log services.exe network connections")

	// An empty ETW provides nothing, so it stays empty whatever covers it.
	reports = []sourcehealth.Report{
		evaluate("security", map[string]int64{"4688": 3, "5156": 900}),
		evaluate("etw", map[string]int64{}),
	}
	sourcehealth.Reconcile(reports)
	require.Equal(t, sourcehealth.StatusEmpty, reports[1].Status)

	// Two sources that each lack what the other has do not vouch for
	// each other.
	reports = []sourcehealth.Report{
		evaluate("sysmon", map[string]int64{"1": 500}),
		evaluate("security", map[string]int64{"5156": 900}),
	}
	sourcehealth.Reconcile(reports)
	require.Equal(t, sourcehealth.StatusEmpty, reports[0].Status)
	require.Equal(t, sourcehealth.StatusEmpty, reports[1].Status)

	// Two sources provide the starts.
	reports = []sourcehealth.Report{
		evaluate("sysmon", map[string]int64{"1": 500, "3": 4}),
		evaluate("security", map[string]int64{"5156": 900}),
		evaluate("etw", map[string]int64{"ProcessStart": 40}),
	}
	sourcehealth.Reconcile(reports)
	require.Equal(t, sourcehealth.StatusOK, reports[1].Status)
	require.Contains(t, reports[1].Hint, "sysmon and etw provide the process starts")
}

func TestEvaluateLastError(t *testing.T) {
	t.Parallel()

	r := sourcehealth.Evaluate(sourcehealth.Evidence{
		Availability: availability(t, "sysmon"),
		CountErr:     errors.New("count failed"),
		Last:         sourcehealth.Read{Err: "read failed"},
		HasLast:      true,
	})
	require.Equal(t, "count failed", r.LastError, "the count is newer than the last read")

	r = sourcehealth.Evaluate(sourcehealth.Evidence{Availability: availability(t, "sysmon"), Last: sourcehealth.Read{Err: "read failed"}, HasLast: true})
	require.Equal(t, "read failed", r.LastError)
}

func TestStatsRecordAndLast(t *testing.T) {
	t.Parallel()

	stats := sourcehealth.NewStats()
	_, ok := stats.Last("etw")
	require.False(t, ok)

	skipped := map[string]int{"bad_pid": 2}
	stats.Record("etw", sourcehealth.Read{Rows: 5, Skipped: skipped})
	skipped["bad_pid"] = 99

	got, ok := stats.Last("etw")
	require.True(t, ok)
	require.Equal(t, 5, got.Rows)
	require.Equal(t, map[string]int{"bad_pid": 2}, got.Skipped, "Record copies the counts")

	got.Skipped["bad_pid"] = 7
	again, _ := stats.Last("etw")
	require.Equal(t, 2, again.Skipped["bad_pid"], "Last returns a copy")
}

func TestStatsConcurrentUse(t *testing.T) {
	t.Parallel()

	stats := sourcehealth.NewStats()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := range 100 {
				stats.Record("sysmon", sourcehealth.Read{Rows: i*1000 + n, Skipped: map[string]int{"bad_pid": n}})
				stats.Last("sysmon")
			}
		})
	}
	wg.Wait()

	got, ok := stats.Last("sysmon")
	require.True(t, ok)
	require.Equal(t, 99, got.Rows%1000, "the last write of some goroutine")
}

func TestReadMainSkipReason(t *testing.T) {
	t.Parallel()

	require.Equal(t, "", sourcehealth.Read{}.MainSkipReason())
	require.Equal(t, "bad_pid", sourcehealth.Read{Skipped: map[string]int{"bad_pid": 3, "absurd_time": 1}}.MainSkipReason())
	require.Equal(t, "absurd_time", sourcehealth.Read{Skipped: map[string]int{"bad_pid": 2, "absurd_time": 2}}.MainSkipReason(), "ties go to the first name")
	require.Equal(t, 4, sourcehealth.Read{Skipped: map[string]int{"bad_pid": 2, "absurd_time": 2}}.SkippedTotal())
}

func TestEvaluateRecorded(t *testing.T) {
	t.Parallel()

	tests := []struct {
		source string
		byKind map[string]int64
		status string
		hint   string
	}{
		{"etw", map[string]int64{}, sourcehealth.StatusEmpty, "the loaded telemetry holds no process_etw_events rows"},
		{"etw", map[string]int64{"ProcessStop": 3}, sourcehealth.StatusError, "no ProcessStart in the loaded telemetry"},
		{"sysmon", map[string]int64{"1": 5}, sourcehealth.StatusEmpty, "the loaded telemetry holds no Sysmon event 3"},
		{"sysmon", map[string]int64{"1": 5, "3": 2}, sourcehealth.StatusOK, "no Sysmon event 3 of services.exe in the loaded telemetry"},
		{"security", map[string]int64{}, sourcehealth.StatusEmpty, "the loaded telemetry holds no Security event 4688 or 5156"},
		{"process_events", map[string]int64{}, sourcehealth.StatusEmpty, "the loaded telemetry holds no process_events rows"},
		{"socket_events", map[string]int64{"connect": 7}, sourcehealth.StatusEmpty, "the loaded telemetry holds socket_events rows but no accept"},
	}
	for _, tt := range tests {
		r := sourcehealth.Evaluate(sourcehealth.Evidence{
			Availability: availability(t, tt.source),
			Counts:       counts(tt.byKind, func(c *sourcehealth.Counts) { c.ParentConnections = 0 }),
			Lookback:     6030311 * time.Second,
			Recorded:     true,
		})
		require.Equal(t, tt.status, r.Status, "%s %v: %s", tt.source, tt.byKind, r.Hint)
		require.Contains(t, r.Hint, tt.hint, "%s %v", tt.source, tt.byKind)
		require.NotContains(t, r.Hint, "6030311", "%s %v", tt.source, tt.byKind)
	}
}
