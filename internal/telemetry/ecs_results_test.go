package telemetry_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// winlogbeatSysmon is the Empire PsExec child as Winlogbeat 8 ships it.
const winlogbeatSysmon = `{"@timestamp":"2020-09-20T16:16:56.597Z","event":{"code":"1","created":"2020-09-20T16:16:57.114Z","kind":"event","provider":"Microsoft-Windows-Sysmon"},"host":{"name":"workstation6"},"log":{"level":"information"},"winlog":{"api":"wineventlog","channel":"Microsoft-Windows-Sysmon/Operational","computer_name":"WORKSTATION6.theshire.local","event_data":{"RuleName":"-","UtcTime":"2020-09-20 16:16:56.597","ProcessGuid":"{d273d0f0-8078-5f67-cb06-000000000800}","Image":"C:\\Windows\\System32\\cmd.exe","ParentProcessId":"704"},"event_id":"1","opcode":"Info","process":{"pid":3392,"thread":{"id":5552}},"provider_guid":"{5770385f-c22a-43e0-bf4c-06f5698ffbd9}","provider_name":"Microsoft-Windows-Sysmon","record_id":2974514,"task":"Process Create (rule: ProcessCreate)","version":5}}`

// winlogbeatSecurity is a Security 5156 with dotted keys inside _source, as
// an Elasticsearch export writes it.
const winlogbeatSecurity = `{"_index":"winlogbeat","_source":{"@timestamp":"2020-09-20T16:16:56.019Z","event.ingested":"2020-09-20T16:16:58.500Z","winlog.channel":"Security","winlog.computer_name":"WORKSTATION6.theshire.local","winlog.event_id":5156,"winlog.provider_name":"Microsoft-Windows-Security-Auditing","winlog.keywords":["Audit Success"],"winlog.task":"Filtering Platform Connection","winlog.event_data.ProcessID":"704","winlog.event_data.SourceAddress":"172.18.39.5","winlog.event_data.SourcePort":"56608","log.level":"information"}}`

func TestLoadECS(t *testing.T) {
	t.Parallel()

	input := winlogbeatSysmon + "\n" + winlogbeatSecurity + "\n"
	b, err := telemetry.Load(t.Context(), strings.NewReader(input), "winlogbeat.ndjson", telemetry.Options{})
	require.NoError(t, err)
	require.Equal(t, telemetry.FormatECS, b.Format)
	require.Zero(t, b.SkippedTotal())

	rows := b.Rows[telemetry.WindowsEventsTable]
	require.Len(t, rows, 2)

	sysmon := rows[0]
	require.Equal(t, "2020-09-20T16:16:56.5970000Z", sysmon["datetime"])
	require.Equal(t, "1600618617", sysmon["time"], "event.created")
	require.Equal(t, "Microsoft-Windows-Sysmon/Operational", sysmon["source"])
	require.Equal(t, "Microsoft-Windows-Sysmon", sysmon["provider_name"])
	require.Equal(t, "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}", sysmon["provider_guid"])
	require.Equal(t, "WORKSTATION6.theshire.local", sysmon["computer_name"], "winlog.computer_name before host.name")
	require.Equal(t, "1", sysmon["eventid"])
	require.Equal(t, "4", sysmon["level"])
	require.NotContains(t, sysmon, "task", "ECS has only the task's display name")
	require.Equal(t, `{"EventData":{"RuleName":"-","UtcTime":"2020-09-20 16:16:56.597","ProcessGuid":"{d273d0f0-8078-5f67-cb06-000000000800}","Image":"C:\\Windows\\System32\\cmd.exe","ParentProcessId":"704"}}`, sysmon["data"])

	security := rows[1]
	require.Equal(t, "2020-09-20T16:16:56.0190000Z", security["datetime"])
	require.Equal(t, "1600618618", security["time"], "event.ingested")
	require.Equal(t, "5156", security["eventid"])
	require.Equal(t, "0", security["level"], "audit events have Level 0")
	require.Equal(t, map[string]string{"ProcessID": "704", "SourceAddress": "172.18.39.5", "SourcePort": "56608"}, eventData(t, security))
}

func TestLoadOsqueryResults(t *testing.T) {
	t.Parallel()

	lines := []string{
		// A differential windows_events row.
		`{"name":"pack_svclaunch_windows_events","hostIdentifier":"WORKSTATION6","calendarTime":"Sun Sep 20 16:16:58 2020 UTC","unixTime":1600618618,"epoch":0,"counter":1,"numerics":false,"decorations":{"host_uuid":"X"},"columns":{"time":"1600618617","datetime":"2020-09-20T16:16:56.5970000Z","source":"Microsoft-Windows-Sysmon/Operational","provider_name":"Microsoft-Windows-Sysmon","provider_guid":"{5770385f-c22a-43e0-bf4c-06f5698ffbd9}","computer_name":"WORKSTATION6","eventid":"1","task":"1","level":"4","keywords":"0x8000000000000000","data":"{\"EventData\":{\"ParentProcessId\":\"704\"}}"},"action":"added"}`,
		// A removed row is skipped and counted.
		`{"name":"pack_svclaunch_windows_events","hostIdentifier":"WORKSTATION6","unixTime":1600618619,"columns":{"time":"1600618500","eventid":"1","source":"Security","data":"{}"},"action":"removed"}`,
		// process_events with numerics and the host in a decoration.
		`{"name":"pack_linux_process_events","unixTime":1700000010,"numerics":true,"decorations":{"hostname":"web1"},"columns":{"pid":4242,"parent":1,"path":"/usr/bin/bash","cmdline":"bash -c id","time":1700000005,"uptime":99},"action":"added"}`,
		// socket_events in a snapshot.
		`{"name":"sockets","hostIdentifier":"web1","unixTime":1700000020,"action":"snapshot","snapshot":[{"action":"accept","pid":"1","path":"/usr/lib/systemd/systemd","fd":"3","family":"2","local_address":"10.0.0.1","local_port":"22","remote_address":"10.0.0.9","remote_port":"51000","time":"1700000001"}]}`,
		// Columns that several tables have, with and without a hint.
		`{"name":"pack_svclaunch_processes","hostIdentifier":"web1","unixTime":1700000030,"columns":{"pid":"1","path":"/sbin/init","cmdline":"init"},"action":"added"}`,
		`{"name":"generic","hostIdentifier":"web1","unixTime":1700000030,"columns":{"pid":"1","path":"/sbin/init","cmdline":"init"},"action":"added"}`,
		// Columns that no known table has.
		`{"name":"mystery","hostIdentifier":"web1","unixTime":1700000030,"columns":{"flux":"1"},"action":"added"}`,
		// A batch line (--logger_event_type=false).
		`{"name":"pack_linux_process_events","hostIdentifier":"web2","unixTime":1700000040,"diffResults":{"added":[{"pid":"7","parent":"1","path":"/bin/sh","cmdline":"sh","time":"1700000039"}],"removed":[{"pid":"6"},{"pid":"5"}]}}`,
		// A line without rows.
		`{"name":"empty","hostIdentifier":"web2","unixTime":1700000041}`,
	}

	b, err := telemetry.Load(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), "osqueryd.results.log", telemetry.Options{})
	require.NoError(t, err)
	require.Equal(t, telemetry.FormatOsqueryResults, b.Format)

	require.Len(t, b.Rows["windows_events"], 1)
	require.Equal(t, "2020-09-20T16:16:56.5970000Z", b.Rows["windows_events"][0]["datetime"])
	require.Equal(t, []string{"WORKSTATION6"}, b.Hosts["windows_events"])

	require.Len(t, b.Rows["process_events"], 2)
	require.Equal(t, map[string]string{"pid": "4242", "parent": "1", "path": "/usr/bin/bash", "cmdline": "bash -c id", "time": "1700000005", "uptime": "99"}, b.Rows["process_events"][0])
	require.Equal(t, []string{"web1", "web2"}, b.Hosts["process_events"])

	require.Len(t, b.Rows["socket_events"], 1)
	require.Equal(t, "accept", b.Rows["socket_events"][0]["action"])
	require.Len(t, b.Rows["processes"], 1)

	require.Equal(t, map[string]int{
		telemetry.SkipRemoved:        3,
		telemetry.SkipAmbiguousTable: 1,
		telemetry.SkipUnknownTable:   1,
		telemetry.SkipMissingColumns: 1,
	}, b.Skipped)
	require.Equal(t, int64(1700000041), b.Clock)

	web1 := b.HostRows("web1")
	require.Len(t, web1["process_events"], 1)
	require.Len(t, web1["socket_events"], 1)
	require.Len(t, web1["processes"], 1)
	require.NotContains(t, web1, "windows_events")
}

func TestLoadOsqueryResultsForcedTable(t *testing.T) {
	t.Parallel()

	line := `{"name":"generic","hostIdentifier":"web1","unixTime":1700000030,"columns":{"pid":"1","path":"/sbin/init","cmdline":"init"},"action":"added"}` + "\n"
	b, err := telemetry.Load(t.Context(), strings.NewReader(line), "results.log", telemetry.Options{Table: "processes"})
	require.NoError(t, err)
	require.Len(t, b.Rows["processes"], 1)
	require.Zero(t, b.SkippedTotal())
}
