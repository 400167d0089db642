package sources_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

const (
	workstation6     = "WORKSTATION6.theshire.local"
	servicesGUID     = "{d273d0f0-e865-5f64-0b00-000000000800}"
	childGUID        = "{d273d0f0-8078-5f67-cb06-000000000800}"
	childPath        = `C:\Windows\System32\cmd.exe`
	servicesDevPath  = `\device\harddiskvolume2\windows\system32\services.exe`
	servicesWinPath  = `C:\Windows\System32\services.exe`
	empireClientPort = 56608
)

func TestSysmonDecodeEmpirePsExec(t *testing.T) {
	t.Parallel()

	events := sources.NewSysmon().Decode(sourceRows(t, testrecordings.EmpirePsExec, sources.NewSysmon()))
	require.Empty(t, events.Skipped)

	// The forwarder dropped ProcessId from Sysmon events: the child's pid
	// is unknown, its parent's comes from ParentProcessId.
	child := findProcess(t, events.Processes, workstation6, 704, childPath)
	require.Equal(t, detect.UnknownPID, child.PID)
	require.Equal(t, childGUID, child.Instance)
	require.Equal(t, servicesGUID, child.ParentInstance)
	require.Equal(t, servicesWinPath, child.ParentPath)
	require.Equal(t, `NT AUTHORITY\SYSTEM`, child.Username)
	require.Contains(t, child.Cmdline, `cmd.exe /C start /b`)
	require.Equal(t, detect.Timestamp{UnixNano: utc(t, "2020-09-20 16:16:56.597"), Resolution: time.Millisecond}, child.Time)
	require.Equal(t, []string{"sysmon"}, child.Sources)

	// The 2020 Sysmon build writes the remote client as the source of an
	// accepted connection. The time is UtcTime, not the later record time.
	conn := findConnection(t, events.Connections, workstation6, empireClientPort)
	require.Equal(t, detect.UnknownPID, conn.PID)
	require.Equal(t, servicesGUID, conn.Instance)
	require.Equal(t, servicesWinPath, conn.Path)
	require.True(t, conn.Inbound)
	require.Equal(t, "tcp", conn.Protocol)
	require.Equal(t, "172.18.39.5", conn.RemoteAddress)
	require.Equal(t, "172.18.39.6", conn.LocalAddress)
	require.Equal(t, 49726, conn.LocalPort)
	require.Equal(t, detect.Timestamp{UnixNano: utc(t, "2020-09-20 16:16:56.019"), Resolution: time.Millisecond}, conn.Time)
}

func TestSecurityDecodeEmpirePsExec(t *testing.T) {
	t.Parallel()

	events := sources.NewSecurity().Decode(sourceRows(t, testrecordings.EmpirePsExec, sources.NewSecurity()))
	require.Empty(t, events.Skipped)

	// 4688 pids are hexadecimal: 0x2344 and creator 0x2c0.
	child := findProcess(t, events.Processes, workstation6, 704, childPath)
	require.Equal(t, int64(9028), child.PID)
	require.Empty(t, child.Instance)
	require.Equal(t, servicesWinPath, child.ParentPath)
	require.Equal(t, `NT AUTHORITY\SYSTEM`, child.Username)
	require.Equal(t, detect.Timestamp{UnixNano: utc(t, "2020-09-20 16:16:56"), Resolution: time.Second}, child.Time)
	require.Equal(t, []string{"security"}, child.Sources)

	// 5156 writes the destination as the local side of an inbound
	// connection, and the application as an NT device path.
	conn := findConnection(t, events.Connections, workstation6, empireClientPort)
	require.Equal(t, int64(704), conn.PID)
	require.Equal(t, servicesDevPath, conn.Path)
	require.Equal(t, "tcp", conn.Protocol)
	require.Equal(t, "172.18.39.5", conn.RemoteAddress)
	require.Equal(t, "172.18.39.6", conn.LocalAddress)
	require.Equal(t, 49726, conn.LocalPort)
	require.Equal(t, time.Second, conn.Time.Resolution)
}

// TestSecurityQueryBothChannelSpellings checks that the Security query
// selects events written under `Security` and under `security`: the Empire
// file has 5156 events under both spellings.
func TestSecurityQueryBothChannelSpellings(t *testing.T) {
	t.Parallel()

	spellings := map[string]int{}
	for _, row := range windowsRows(t, testrecordings.EmpirePsExec) {
		if row["eventid"] == "5156" {
			spellings[row["source"]]++
		}
	}
	require.Len(t, spellings, 2, "the recording has both spellings")

	selected := map[string]int{}
	for _, row := range sourceRows(t, testrecordings.EmpirePsExec, sources.NewSecurity()) {
		if row["eventid"] == "5156" {
			selected[row["source"]]++
		}
	}
	require.Equal(t, spellings, selected)
}

// TestSysmonDecodeMeterpreterPsExec reads the 2019 python-evtx export, whose
// Sysmon build writes the local side (10.0.2.18:445) as the source of an
// accepted connection and `False` for Initiated.
func TestSysmonDecodeMeterpreterPsExec(t *testing.T) {
	t.Parallel()

	events := sources.NewSysmon().Decode(sourceRows(t, testrecordings.MeterpreterPsExecJSONL, sources.NewSysmon()))
	require.Empty(t, events.Skipped)

	conn := findConnection(t, events.Connections, "IEWIN7", 33801)
	require.Equal(t, int64(4), conn.PID)
	require.Equal(t, "System", conn.Path)
	require.Equal(t, "10.0.2.19", conn.RemoteAddress)
	require.Equal(t, "10.0.2.18", conn.LocalAddress)
	require.Equal(t, 445, conn.LocalPort)
	require.Equal(t, detect.Timestamp{UnixNano: utc(t, "2019-04-30 20:26:51.599"), Resolution: time.Millisecond}, conn.Time)
	require.Equal(t, map[string]int{sources.OrientByAddress: 1}, events.Orientation)

	child := findProcess(t, events.Processes, "IEWIN7", 460, childPath)
	require.Equal(t, int64(3348), child.PID)
	require.Equal(t, detect.Timestamp{UnixNano: utc(t, "2019-04-30 20:26:51.949"), Resolution: time.Millisecond}, child.Time)

	require.Equal(t, map[string][]string{"IEWIN7": {"10.0.2.18"}}, events.HostAddresses())
}

func TestSecurityDecodeHandBuilt(t *testing.T) {
	t.Parallel()

	rows := []map[string]string{
		// python-evtx writes 4688 pids zero-padded to 16 digits.
		eventRow(t, "Security", 4688, "MSEDGEWIN10", "2019-03-18T20:40:09.2318352Z", map[string]string{
			"NewProcessId": "0x0000000000000c24", "ProcessId": "0x0000000000000248",
			"NewProcessName": `C:\Windows\System32\svchost.exe`, "CommandLine": "svchost.exe -k x",
			"SubjectUserName": "alice", "SubjectDomainName": "LAB", "SubjectLogonId": "0x5a1f2",
			"TargetUserName": "-", "TargetDomainName": "-",
		}),
		// ProcessId spelling of the pid; words for the direction.
		eventRow(t, "SECURITY", 5156, "MSEDGEWIN10", "2019-03-18T20:40:09.123Z", map[string]string{
			"ProcessId": "588", "Application": `\device\harddiskvolume1\windows\system32\services.exe`,
			"Direction": "Inbound", "SourceAddress": "fe80::1c2a:3b4c:5d6e:7f80", "SourcePort": "50000",
			"DestAddress": "fe80::aa:bb:cc:dd", "DestPort": "49670", "Protocol": "6",
		}),
	}
	events := sources.NewSecurity().Decode(rows)
	require.Empty(t, events.Skipped)

	require.Len(t, events.Processes, 1)
	p := events.Processes[0]
	require.Equal(t, int64(3108), p.PID)
	require.Equal(t, int64(584), p.ParentPID)
	require.Empty(t, p.ParentPath, "4688 before Windows 10 has no ParentProcessName")
	require.Equal(t, `LAB\alice`, p.Username)
	require.Equal(t, time.Duration(100), p.Time.Resolution)

	require.Len(t, events.Connections, 1)
	c := events.Connections[0]
	require.Equal(t, int64(588), c.PID)
	require.Equal(t, "fe80::aa:bb:cc:dd", c.LocalAddress)
	require.Equal(t, 49670, c.LocalPort)
	require.Equal(t, time.Millisecond, c.Time.Resolution)
	require.Equal(t, map[string][]string{"MSEDGEWIN10": {"fe80::aa:bb:cc:dd"}}, events.HostAddresses())
}

// TestDirectionSpellings checks every spelling of a connection's direction
// that the sources accept.
func TestDirectionSpellings(t *testing.T) {
	t.Parallel()

	tests := []struct {
		source    sources.Source
		channel   string
		eventID   int
		field     string
		value     string
		inbound   bool
		unknownOK bool
	}{
		{source: sources.NewSecurity(), channel: "Security", eventID: 5156, field: "Direction", value: "%%14592", inbound: true},
		{source: sources.NewSecurity(), channel: "Security", eventID: 5156, field: "Direction", value: "%%14593"},
		{source: sources.NewSecurity(), channel: "Security", eventID: 5156, field: "Direction", value: "INBOUND", inbound: true},
		{source: sources.NewSecurity(), channel: "Security", eventID: 5156, field: "Direction", value: "ingress", inbound: true},
		{source: sources.NewSecurity(), channel: "Security", eventID: 5156, field: "Direction", value: "Incoming", inbound: true},
		{source: sources.NewSecurity(), channel: "Security", eventID: 5156, field: "Direction", value: "outbound"},
		{source: sources.NewSysmon(), channel: sources.SysmonChannel, eventID: 3, field: "Initiated", value: "false", inbound: true},
		{source: sources.NewSysmon(), channel: sources.SysmonChannel, eventID: 3, field: "Initiated", value: "False", inbound: true},
		{source: sources.NewSysmon(), channel: sources.SysmonChannel, eventID: 3, field: "Initiated", value: "0", inbound: true},
		{source: sources.NewSysmon(), channel: sources.SysmonChannel, eventID: 3, field: "Initiated", value: "incoming", inbound: true},
		{source: sources.NewSysmon(), channel: sources.SysmonChannel, eventID: 3, field: "Initiated", value: "True"},
	}

	for _, tt := range tests {
		t.Run(tt.source.Name()+" "+tt.value, func(t *testing.T) {
			t.Parallel()

			data := map[string]string{
				"ProcessId": "704", "ProcessID": "704", "ProcessGuid": servicesGUID, "UtcTime": "2020-09-20 16:16:56.019",
				"SourceIp": "172.18.39.5", "SourcePort": "56608", "DestinationIp": "172.18.39.6", "DestinationPort": "49726",
				"SourceAddress": "172.18.39.5", "DestAddress": "172.18.39.6", "DestPort": "49726", "Protocol": "6",
				tt.field: tt.value,
			}
			events := tt.source.Decode([]map[string]string{eventRow(t, tt.channel, tt.eventID, workstation6, "2020-09-20T16:16:56Z", data)})
			require.Empty(t, events.Skipped)
			if tt.inbound {
				require.Len(t, events.Connections, 1)
				require.True(t, events.Connections[0].Inbound)
				return
			}
			require.Empty(t, events.Connections, "outbound connections only add address evidence")
			require.Equal(t, map[string][]string{workstation6: {"172.18.39.5"}}, events.HostAddresses())
		})
	}
}

// TestSysmonIPv6Notation checks that Sysmon's uncompressed IPv6 notation is
// written in the compressed form Security events use.
func TestSysmonIPv6Notation(t *testing.T) {
	t.Parallel()

	row := eventRow(t, sources.SysmonChannel, 3, "HOST1", "2020-09-20T16:16:57Z", map[string]string{
		"ProcessGuid": servicesGUID, "ProcessId": "704", "Image": servicesWinPath, "UtcTime": "2020-09-20 16:16:56.019",
		"Initiated": "false", "Protocol": "tcp",
		"SourceIp": "fe80:0:0:0:4928:567d:48ff:95db", "SourcePort": "54786",
		"DestinationIp": "fe80:0:0:0:1c2a:3b4c:5d6e:7f80", "DestinationPort": "49726",
	})
	events := sources.NewSysmon().Decode([]map[string]string{row})
	require.Len(t, events.Connections, 1)
	c := events.Connections[0]
	require.Equal(t, "fe80::4928:567d:48ff:95db", c.RemoteAddress)
	require.Equal(t, "fe80::1c2a:3b4c:5d6e:7f80", c.LocalAddress)
}

// TestSysmonTimeFallback checks that a Sysmon event without UtcTime takes
// the record's datetime at its own precision.
func TestSysmonTimeFallback(t *testing.T) {
	t.Parallel()

	row := eventRow(t, sources.SysmonChannel, 1, "HOST1", "2020-09-20T16:16:57.1234567Z", map[string]string{
		"ProcessGuid": childGUID, "ProcessId": "9028", "ParentProcessId": "704", "Image": childPath,
	})
	events := sources.NewSysmon().Decode([]map[string]string{row})
	require.Len(t, events.Processes, 1)
	require.Equal(t, time.Duration(100), events.Processes[0].Time.Resolution)
	require.Equal(t, utc(t, "2020-09-20 16:16:57.1234567"), events.Processes[0].Time.UnixNano)
}

func TestDecodeSkips(t *testing.T) {
	t.Parallel()

	good := map[string]string{
		"ProcessGuid": childGUID, "ProcessId": "9028", "ParentProcessId": "704", "Image": childPath,
		"UtcTime": "2020-09-20 16:16:56.597",
	}
	sysmonRow := func(data map[string]string) map[string]string {
		return eventRow(t, sources.SysmonChannel, 1, "HOST1", "", data)
	}
	raw := func(row map[string]string, column, value string) map[string]string {
		row[column] = value
		return row
	}
	connection := map[string]string{
		"ProcessGuid": servicesGUID, "UtcTime": "2020-09-20 16:16:56.019", "Initiated": "false",
		"SourceIp": "172.18.39.5", "SourcePort": "56608", "DestinationIp": "172.18.39.6", "DestinationPort": "49726",
	}

	tests := []struct {
		name   string
		source sources.Source
		row    map[string]string
		reason string
	}{
		{name: "invalid JSON", source: sources.NewSysmon(), row: raw(sysmonRow(good), "data", `{"EventData":{`), reason: sources.SkipInvalidJSON},
		{name: "EventData array", source: sources.NewSysmon(), row: raw(sysmonRow(good), "data", `{"EventData":["a","b"]}`), reason: sources.SkipMissingField},
		{name: "no computer name", source: sources.NewSysmon(), row: raw(sysmonRow(good), "computer_name", ""), reason: sources.SkipMissingField},
		{name: "pid without guid", source: sources.NewSysmon(), row: sysmonRow(withAll(good, "ProcessGuid", "")), reason: ""},
		{name: "no pid and no guid", source: sources.NewSysmon(), row: sysmonRow(withAll(withAll(good, "ProcessGuid", ""), "ProcessId", "")), reason: sources.SkipMissingField},
		{name: "bad pid", source: sources.NewSysmon(), row: sysmonRow(withAll(good, "ProcessId", "12ab")), reason: sources.SkipBadPID},
		{name: "negative parent pid", source: sources.NewSysmon(), row: sysmonRow(withAll(good, "ParentProcessId", "-5")), reason: sources.SkipBadPID},
		{name: "unparsable time", source: sources.NewSysmon(), row: sysmonRow(withAll(good, "UtcTime", "yesterday")), reason: sources.SkipUnparsableTime},
		{name: "absurd time", source: sources.NewSysmon(), row: sysmonRow(withAll(good, "UtcTime", "1601-01-01 00:00:00.000")), reason: sources.SkipAbsurdTime},
		{name: "other channel", source: sources.NewSysmon(), row: raw(sysmonRow(good), "source", "Application"), reason: sources.SkipUnexpectedEvent},
		{name: "other event id", source: sources.NewSysmon(), row: raw(sysmonRow(good), "eventid", "5"), reason: sources.SkipUnexpectedEvent},
		{
			name: "unknown direction", source: sources.NewSysmon(),
			row:    eventRow(t, sources.SysmonChannel, 3, "HOST1", "", withAll(connection, "Initiated", "maybe")),
			reason: sources.SkipUnknownDirection,
		},
		{
			name: "bad port", source: sources.NewSysmon(),
			row:    eventRow(t, sources.SysmonChannel, 3, "HOST1", "", withAll(connection, "SourcePort", "70000")),
			reason: sources.SkipBadPort,
		},
		{
			name: "missing port", source: sources.NewSysmon(),
			row:    eventRow(t, sources.SysmonChannel, 3, "HOST1", "", withAll(connection, "DestinationPort", "")),
			reason: sources.SkipMissingField,
		},
		{
			name: "4688 without NewProcessId", source: sources.NewSecurity(),
			row:    eventRow(t, "Security", 4688, "HOST1", "2020-09-20T16:16:56Z", map[string]string{"ProcessId": "0x2c0"}),
			reason: sources.SkipMissingField,
		},
		{
			name: "4688 bad hex pid", source: sources.NewSecurity(),
			row:    eventRow(t, "Security", 4688, "HOST1", "2020-09-20T16:16:56Z", map[string]string{"NewProcessId": "0xzz"}),
			reason: sources.SkipBadPID,
		},
		{
			name: "4688 without datetime", source: sources.NewSecurity(),
			row:    eventRow(t, "Security", 4688, "HOST1", "", map[string]string{"NewProcessId": "0x2344"}),
			reason: sources.SkipUnparsableTime,
		},
		{
			name: "5156 without pid", source: sources.NewSecurity(),
			row: eventRow(t, "Security", 5156, "HOST1", "2020-09-20T16:16:56Z", map[string]string{
				"Direction": "%%14592", "SourceAddress": "172.18.39.5", "SourcePort": "1", "DestAddress": "172.18.39.6", "DestPort": "2",
			}),
			reason: sources.SkipMissingField,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			events := tt.source.Decode([]map[string]string{tt.row})
			if tt.reason == "" {
				require.Empty(t, events.Skipped)
				return
			}
			require.Equal(t, map[string]int{tt.reason: 1}, events.Skipped)
			require.Empty(t, events.Processes)
			require.Empty(t, events.Connections)
		})
	}
}

func withAll(data map[string]string, key, value string) map[string]string {
	out := map[string]string{}
	for k, v := range data {
		out[k] = v
	}
	if value == "" {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

// TestSysmonNullValues checks python-evtx's null values, which count as
// missing fields, and its True/False spelling.
func TestSysmonNullValues(t *testing.T) {
	t.Parallel()

	row := map[string]string{
		"time": "1556656013", "datetime": "2019-04-30T20:26:53.152962Z", "source": sources.SysmonChannel,
		"computer_name": "IEWIN7", "eventid": "3",
		"data": `{"EventData":{"RuleName":null,"UtcTime":"2019-04-30 20:26:51.599","ProcessGuid":"{365ABB72-2584-5CC9-0000-0010EA030000}",` +
			`"ProcessId":"4","Image":"System","Protocol":"tcp","Initiated":"False","SourceIp":"10.0.2.18","SourceHostname":"IEWIN7",` +
			`"SourcePort":"445","DestinationIp":"10.0.2.19","DestinationHostname":null,"DestinationPort":"33801"}}`,
	}
	events := sources.NewSysmon().Decode([]map[string]string{row})
	require.Empty(t, events.Skipped)
	require.Len(t, events.Connections, 1)

	c := events.Connections[0]
	require.Equal(t, "{365abb72-2584-5cc9-0000-0010ea030000}", c.Instance, "GUIDs are compared in lower case")
	require.Equal(t, "10.0.2.18", c.LocalAddress, "SourceHostname names the host")
	require.Equal(t, map[string]int{sources.OrientByHostname: 1}, events.Orientation)
}

func TestUnixDecode(t *testing.T) {
	t.Parallel()

	processRows := []map[string]string{
		{"pid": "4242", "parent": "812", "path": "/bin/sh", "cmdline": "sh -c id", "time": "1700000001"},
		{"pid": "4243", "parent": "-1", "path": "/bin/true", "cmdline": "", "time": "1700000002"},
		{"pid": "", "parent": "1", "path": "/bin/x", "time": "1700000002"},
		{"pid": "x", "parent": "1", "path": "/bin/x", "time": "1700000002"},
		{"pid": "5", "parent": "1", "path": "/bin/x", "time": "soon"},
	}
	processes := sources.NewProcessEvents("web01").Decode(processRows)
	require.Equal(t, map[string]int{sources.SkipMissingField: 1, sources.SkipBadPID: 1, sources.SkipUnparsableTime: 1}, processes.Skipped)
	require.Equal(t, []detect.ProcessStart{
		{
			Host: "web01", PID: 4242, ParentPID: 812, Path: "/bin/sh", Cmdline: "sh -c id",
			Time: detect.Timestamp{UnixNano: 1700000001 * int64(time.Second), Resolution: time.Second}, Sources: []string{"process_events"},
		},
		{
			Host: "web01", PID: 4243, ParentPID: detect.UnknownPID, Path: "/bin/true",
			Time: detect.Timestamp{UnixNano: 1700000002 * int64(time.Second), Resolution: time.Second}, Sources: []string{"process_events"},
		},
	}, processes.Processes)

	socketRows := []map[string]string{
		{
			"action": "accept", "pid": "812", "path": "/usr/sbin/sshd", "family": "2", "protocol": "6",
			"local_address": "10.0.0.5", "local_port": "22", "remote_address": "10.0.0.9", "remote_port": "50123", "time": "1700000001",
		},
		{
			"action": "accept", "pid": "812", "path": "/usr/sbin/sshd", "family": "10", "protocol": "",
			"local_address": "", "local_port": "", "remote_address": "2001:db8:0:0::9", "remote_port": "50124", "time": "1700000001",
		},
		{"action": "connect", "pid": "812", "remote_address": "10.0.0.9", "remote_port": "22", "time": "1700000001"},
		{"action": "accept", "pid": "812", "remote_address": "10.0.0.9", "remote_port": "", "time": "1700000001"},
	}
	sockets := sources.NewSocketEvents("web01").Decode(socketRows)
	require.Equal(t, map[string]int{sources.SkipUnexpectedEvent: 1, sources.SkipMissingField: 1}, sockets.Skipped)
	require.Len(t, sockets.Connections, 2)
	require.Equal(t, detect.Connection{
		Host: "web01", PID: 812, Path: "/usr/sbin/sshd", Inbound: true, Protocol: "tcp",
		LocalAddress: "10.0.0.5", LocalPort: 22, RemoteAddress: "10.0.0.9", RemotePort: 50123,
		Time: detect.Timestamp{UnixNano: 1700000001 * int64(time.Second), Resolution: time.Second}, Sources: []string{"socket_events"},
	}, sockets.Connections[0])
	require.Equal(t, "2001:db8::9", sockets.Connections[1].RemoteAddress)
	require.Equal(t, "tcp", sockets.Connections[1].Protocol, "an accepted socket with protocol 0 is TCP")
	require.Equal(t, map[string][]string{"web01": {"10.0.0.5"}}, sockets.HostAddresses())
}
