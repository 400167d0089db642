package sources_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

const etwColumns = "SELECT type, pid, ppid, path, cmdline, username, time, time_windows, header_pid, " +
	"process_sequence_number, parent_process_sequence_number FROM process_etw_events"

// filetime converts a Unix time in nanoseconds into a Windows FILETIME
// string: 100 ns ticks since 1601-01-01 UTC.
func filetime(unixNano int64) string {
	return strconv.FormatInt(unixNano/100+116_444_736_000_000_000, 10)
}

// etwStart returns a ProcessStart row of process_etw_events as osquery
// stores it, changed by edits.
func etwStart(edits ...func(map[string]string)) map[string]string {
	at := time.Date(2020, 9, 20, 16, 16, 56, 597_432_100, time.UTC)
	row := map[string]string{
		"type":                           "ProcessStart",
		"pid":                            "9028",
		"ppid":                           "704",
		"session_id":                     "0",
		"path":                           `C:\Windows\System32\cmd.exe`,
		"cmdline":                        `C:\windows\system32\cmd.exe /C start /b powershell -noP -sta -w 1 -enc SQBmACgA`,
		"username":                       `NT AUTHORITY\SYSTEM`,
		"datetime":                       strconv.FormatInt(at.Unix(), 10),
		"time":                           strconv.FormatInt(at.Unix(), 10),
		"time_windows":                   filetime(at.UnixNano()),
		"header_pid":                     "704",
		"process_sequence_number":        "4711",
		"parent_process_sequence_number": "76",
	}
	for _, edit := range edits {
		edit(row)
	}
	return row
}

func TestETWQueryGolden(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		bounds sources.Bounds
		want   string
	}{
		{name: "lower bound", bounds: sources.Bounds{Lower: 1600618555}, want: etwColumns + " WHERE time >= 1600618555 AND type = 'ProcessStart'"},
		{
			name:   "both bounds",
			bounds: sources.Bounds{Lower: 1600618555, Upper: 1600618676},
			want:   etwColumns + " WHERE time >= 1600618555 AND time <= 1600618676 AND type = 'ProcessStart'",
		},
		{
			name:   "row cap",
			bounds: sources.Bounds{Lower: 1600618555, MaxRows: 50000},
			want:   etwColumns + " WHERE time >= 1600618555 AND type = 'ProcessStart' LIMIT 50000",
		},
		{
			name:   "row cap newest first",
			bounds: sources.Bounds{Lower: 1600618555, MaxRows: 50000, NewestFirst: true},
			want:   etwColumns + " WHERE time >= 1600618555 AND type = 'ProcessStart' ORDER BY time DESC LIMIT 50000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := sources.NewETW("").Query(tt.bounds)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestETWDecodeProcessStart(t *testing.T) {
	t.Parallel()

	events := sources.NewETW("WORKSTATION6").Decode([]map[string]string{etwStart()})
	require.Empty(t, events.Skipped)
	require.Len(t, events.Processes, 1)

	p := events.Processes[0]
	require.Equal(t, "WORKSTATION6", p.Host)
	require.Equal(t, int64(9028), p.PID)
	require.Equal(t, int64(704), p.ParentPID)
	require.Equal(t, int64(704), p.HeaderPID)
	require.Equal(t, "etw:4711", p.Instance)
	require.Equal(t, "etw:76", p.ParentInstance)
	require.Empty(t, p.ParentPath, "the table has no parent path")
	require.Equal(t, `C:\Windows\System32\cmd.exe`, p.Path)
	require.Equal(t, `NT AUTHORITY\SYSTEM`, p.Username)
	require.Equal(t, detect.Timestamp{UnixNano: time.Date(2020, 9, 20, 16, 16, 56, 597_432_100, time.UTC).UnixNano(), Resolution: 100 * time.Nanosecond}, p.Time)
	require.Equal(t, []string{"etw"}, p.Sources)
	require.Empty(t, events.Connections)
}

// TestETWDecodeSequenceNumbers covers the osquery releases that write the
// parent's sequence number into both columns, and starts without sequence
// numbers.
func TestETWDecodeSequenceNumbers(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name                     string
		sequence, parentSequence string
		instance, parentInstance string
	}{
		{name: "both", sequence: "4711", parentSequence: "76", instance: "etw:4711", parentInstance: "etw:76"},
		{name: "parent's number in both columns", sequence: "76", parentSequence: "76", instance: "", parentInstance: "etw:76"},
		{name: "zero", sequence: "0", parentSequence: "0"},
		{name: "missing", sequence: "", parentSequence: ""},
		{name: "invalid", sequence: "x", parentSequence: "-5"},
		{name: "leading zeros", sequence: "04711", parentSequence: "076", instance: "etw:4711", parentInstance: "etw:76"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			events := sources.NewETW("h").Decode([]map[string]string{etwStart(func(row map[string]string) {
				row["process_sequence_number"] = tt.sequence
				row["parent_process_sequence_number"] = tt.parentSequence
			})})
			require.Len(t, events.Processes, 1)
			require.Equal(t, tt.instance, events.Processes[0].Instance)
			require.Equal(t, tt.parentInstance, events.Processes[0].ParentInstance)
		})
	}
}

func TestETWDecodeTimeFallback(t *testing.T) {
	t.Parallel()

	for _, missing := range []string{"", "0"} {
		events := sources.NewETW("h").Decode([]map[string]string{etwStart(func(row map[string]string) { row["time_windows"] = missing })})
		require.Len(t, events.Processes, 1, "time_windows %q", missing)
		require.Equal(t, detect.Timestamp{UnixNano: 1600618616 * int64(time.Second), Resolution: time.Second}, events.Processes[0].Time,
			"time_windows %q falls back to the whole-second time", missing)
	}
}

func TestETWDecodeSkips(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		edit   func(map[string]string)
		reason string
	}{
		{name: "process stop", edit: func(r map[string]string) { r["type"] = "ProcessStop" }, reason: sources.SkipUnexpectedEvent},
		{name: "missing pid", edit: func(r map[string]string) { r["pid"] = "" }, reason: sources.SkipMissingField},
		{name: "bad pid", edit: func(r map[string]string) { r["pid"] = "9x" }, reason: sources.SkipBadPID},
		{name: "unknown pid", edit: func(r map[string]string) { r["pid"] = "-1" }, reason: sources.SkipBadPID},
		{name: "bad parent pid", edit: func(r map[string]string) { r["ppid"] = "0x" }, reason: sources.SkipBadPID},
		{name: "bad header pid", edit: func(r map[string]string) { r["header_pid"] = "none" }, reason: sources.SkipBadPID},
		{name: "unparsable filetime", edit: func(r map[string]string) { r["time_windows"] = "soon" }, reason: sources.SkipUnparsableTime},
		{name: "filetime of 1601", edit: func(r map[string]string) { r["time_windows"] = "1" }, reason: sources.SkipAbsurdTime},
		{name: "largest filetime", edit: func(r map[string]string) { r["time_windows"] = "9223372036854775807" }, reason: sources.SkipAbsurdTime},
		{name: "no time at all", edit: func(r map[string]string) { r["time_windows"], r["time"] = "", "" }, reason: sources.SkipUnparsableTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			events := sources.NewETW("h").Decode([]map[string]string{etwStart(tt.edit), etwStart()})
			require.Equal(t, map[string]int{tt.reason: 1}, events.Skipped)
			require.Len(t, events.Processes, 1, "the good row is kept")
		})
	}
}

func TestETWParentQuery(t *testing.T) {
	t.Parallel()

	etw := sources.NewETW("")
	events := etw.Decode([]map[string]string{etwStart()})

	query, err := etw.ParentQuery(events, []string{"services.exe", "Services.EXE", "it's.exe"})
	require.NoError(t, err)
	require.Equal(t, "SELECT pid, name, path, start_time FROM processes WHERE lower(name) IN ('it''s.exe','services.exe')", query)

	none, err := etw.ParentQuery(sources.NewEvents(), []string{"services.exe"})
	require.NoError(t, err)
	require.Empty(t, none, "no start needs a parent path")

	none, err = etw.ParentQuery(events, nil)
	require.NoError(t, err)
	require.Empty(t, none, "no parent names")
}

func TestETWFillParents(t *testing.T) {
	t.Parallel()

	childSecond := int64(1600618616)
	tests := []struct {
		name string
		row  map[string]string
		want string
	}{
		{name: "started before the child", row: map[string]string{"pid": "704", "name": "services.exe", "path": servicesWinPath, "start_time": strconv.FormatInt(childSecond-600, 10)}, want: servicesWinPath},
		{name: "started in the child's second", row: map[string]string{"pid": "704", "name": "services.exe", "path": servicesWinPath, "start_time": strconv.FormatInt(childSecond, 10)}, want: servicesWinPath},
		{name: "started after the child", row: map[string]string{"pid": "704", "name": "services.exe", "path": servicesWinPath, "start_time": strconv.FormatInt(childSecond+1, 10)}},
		{name: "other pid", row: map[string]string{"pid": "716", "name": "services.exe", "path": servicesWinPath, "start_time": "1"}},
		{name: "unknown start time", row: map[string]string{"pid": "704", "name": "services.exe", "path": servicesWinPath, "start_time": "-1"}},
		{name: "name without path", row: map[string]string{"pid": "704", "name": "services.exe", "path": "", "start_time": "1"}, want: "services.exe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			etw := sources.NewETW("")
			events := etw.Decode([]map[string]string{etwStart()})
			etw.FillParents(events, []map[string]string{tt.row})
			require.Equal(t, tt.want, events.Processes[0].ParentPath)
		})
	}
}

// TestETWFillParentsAcrossReboot converts the process creations of a
// recorded reboot into ETW rows. services.exe ran as pid 716 before the
// reboot and as pid 684 after it, started at 07:07:55 UTC. The children of
// the running services.exe get its path. If the new services.exe had
// received the old pid, the start time would still separate the children
// from before the reboot.
func TestETWFillParentsAcrossReboot(t *testing.T) {
	t.Parallel()

	security := sources.NewSecurity().Decode(sourceRows(t, testrecordings.EmpireRunKeysReboot, sources.NewSecurity()))
	var rows []map[string]string
	for i, p := range security.Processes {
		rows = append(rows, map[string]string{
			"type":                           "ProcessStart",
			"pid":                            strconv.FormatInt(p.PID, 10),
			"ppid":                           strconv.FormatInt(p.ParentPID, 10),
			"path":                           p.Path,
			"cmdline":                        p.Cmdline,
			"username":                       p.Username,
			"time":                           strconv.FormatInt(p.Time.UnixNano/int64(time.Second), 10),
			"time_windows":                   filetime(p.Time.UnixNano),
			"header_pid":                     strconv.FormatInt(p.ParentPID, 10),
			"process_sequence_number":        strconv.Itoa(1000 + i),
			"parent_process_sequence_number": "70",
		})
	}
	servicesStart := time.Date(2020, 9, 4, 7, 7, 55, 0, time.UTC).Unix()

	countFilled := func(processesRow map[string]string) (before, after int) {
		etw := sources.NewETW("")
		events := etw.Decode(rows)
		require.Empty(t, events.Skipped)
		etw.FillParents(events, []map[string]string{processesRow})
		for _, p := range events.Processes {
			if p.ParentPath == "" {
				continue
			}
			if p.Time.UnixNano < servicesStart*int64(time.Second) {
				before++
			} else {
				after++
			}
		}
		return before, after
	}

	before, after := countFilled(map[string]string{"pid": "684", "name": "services.exe", "path": servicesWinPath, "start_time": strconv.FormatInt(servicesStart, 10)})
	require.Zero(t, before)
	require.Equal(t, 92, after, "every child of services.exe pid 684")

	before, after = countFilled(map[string]string{"pid": "716", "name": "services.exe", "path": servicesWinPath, "start_time": strconv.FormatInt(servicesStart, 10)})
	require.Zero(t, before, "the child of pid 716 before the reboot is not the running services.exe's")
	require.Zero(t, after)

	before, _ = countFilled(map[string]string{"pid": "716", "name": "services.exe", "path": servicesWinPath, "start_time": strconv.FormatInt(servicesStart-3600, 10)})
	require.Equal(t, 1, before, "with an earlier start time the same child is filled, so the start time decided")
}

func TestAssignLocalHost(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		local  string
		others []string
		want   string
	}{
		{name: "fqdn of the short name", local: "workstation6", others: []string{"WORKSTATION6.theshire.local"}, want: "WORKSTATION6.theshire.local"},
		{name: "same spelling", local: "WORKSTATION6", others: []string{"WORKSTATION6"}, want: "WORKSTATION6"},
		{name: "other host only", local: "web01", others: []string{"WORKSTATION6.theshire.local"}, want: "web01"},
		{name: "two spellings", local: "ws6", others: []string{"ws6.a.local", "WS6.b.local"}, want: "ws6"},
		{name: "no other events", local: "ws6", want: "ws6"},
		{name: "empty local, one host", others: []string{"WORKSTATION6.theshire.local"}, want: "WORKSTATION6.theshire.local"},
		{name: "empty local, two hosts", others: []string{"a", "b"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			events := sources.NewETW("").Decode([]map[string]string{etwStart()})
			for _, host := range tt.others {
				events.Processes = append(events.Processes, detect.ProcessStart{Host: host, PID: 1})
			}

			require.Equal(t, tt.want, events.AssignLocalHost(tt.local))
			require.Equal(t, tt.want, events.Processes[0].Host)
			for i, host := range tt.others {
				require.Equal(t, host, events.Processes[i+1].Host, "named events keep their host")
			}
		})
	}
}
