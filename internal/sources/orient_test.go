package sources_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
)

// sysmonInbound builds a Sysmon event 3 with Initiated false and the given
// source and destination sides.
func sysmonInbound(t *testing.T, host, guid, sourceIP string, sourcePort int, destinationIP string, destinationPort int) map[string]string {
	t.Helper()

	return eventRow(t, sources.SysmonChannel, 3, host, "2020-09-20T16:16:58Z", map[string]string{
		"ProcessGuid": guid, "Image": `C:\Windows\System32\services.exe`, "UtcTime": "2020-09-20 16:16:56.019",
		"Protocol": "tcp", "Initiated": "false",
		"SourceIp": sourceIP, "SourcePort": strconv.Itoa(sourcePort), "SourceHostname": "-",
		"DestinationIp": destinationIP, "DestinationPort": strconv.Itoa(destinationPort), "DestinationHostname": "-",
	})
}

// sysmonOutbound builds a Sysmon event 3 with Initiated true, whose source
// is the host's own address in every Sysmon build.
func sysmonOutbound(t *testing.T, host, sourceIP string) map[string]string {
	t.Helper()

	return eventRow(t, sources.SysmonChannel, 3, host, "2020-09-20T16:16:58Z", map[string]string{
		"ProcessGuid": "{other}", "ProcessId": "1200", "UtcTime": "2020-09-20 16:16:50.000", "Protocol": "tcp", "Initiated": "true",
		"SourceIp": sourceIP, "SourcePort": "50001", "DestinationIp": "10.9.9.9", "DestinationPort": "443",
	})
}

type side struct {
	address string
	port    int
}

func localRemote(c detect.Connection) (side, side) {
	return side{c.LocalAddress, c.LocalPort}, side{c.RemoteAddress, c.RemotePort}
}

// TestSysmonOrientation covers each rule that decides the local side of a
// Sysmon inbound connection, in both orientations Sysmon builds write.
func TestSysmonOrientation(t *testing.T) {
	t.Parallel()

	const host = "HOST1"
	tests := []struct {
		name   string
		rows   []map[string]string
		local  side
		remote side
		rule   string
	}{
		{
			name: "host address, remote written as source",
			rows: []map[string]string{
				sysmonOutbound(t, host, "10.0.0.1"),
				sysmonInbound(t, host, "{svc}", "10.0.0.2", 40000, "10.0.0.1", 50000),
			},
			local: side{"10.0.0.1", 50000}, remote: side{"10.0.0.2", 40000}, rule: sources.OrientByAddress,
		},
		{
			name: "host address, local written as source",
			rows: []map[string]string{
				sysmonOutbound(t, host, "10.0.0.1"),
				sysmonInbound(t, host, "{svc}", "10.0.0.1", 50000, "10.0.0.2", 40000),
			},
			local: side{"10.0.0.1", 50000}, remote: side{"10.0.0.2", 40000}, rule: sources.OrientByAddress,
		},
		{
			name: "host address in IPv6 notations",
			rows: []map[string]string{
				sysmonOutbound(t, host, "fe80::1"),
				sysmonInbound(t, host, "{svc}", "fe80:0:0:0:0:0:0:2", 100, "fe80:0:0:0:0:0:0:1", 50000),
			},
			local: side{"fe80::1", 50000}, remote: side{"fe80::2", 100}, rule: sources.OrientByAddress,
		},
		{
			name: "lower port",
			rows: []map[string]string{
				sysmonInbound(t, host, "{svc}", "10.0.0.2", 56608, "10.0.0.1", 49726),
			},
			local: side{"10.0.0.1", 49726}, remote: side{"10.0.0.2", 56608}, rule: sources.OrientByLowerPort,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			events := sources.NewSysmon().Decode(tt.rows)
			require.Empty(t, events.Skipped)
			require.Len(t, events.Connections, 1)

			local, remote := localRemote(events.Connections[0])
			require.Equal(t, tt.local, local)
			require.Equal(t, tt.remote, remote)
			require.Equal(t, map[string]int{tt.rule: 1}, events.Orientation)
		})
	}
}

// TestSysmonOrientationListeningPort checks that a port on which one process
// accepted repeatedly is its local side, even where the client ports are
// lower.
func TestSysmonOrientationListeningPort(t *testing.T) {
	t.Parallel()

	var rows []map[string]string
	for _, clientPort := range []int{100, 200, 300} {
		rows = append(rows, sysmonInbound(t, "HOST1", "{system}", "10.0.0.1", 445, "10.0.0.2", clientPort))
	}
	events := sources.NewSysmon().Decode(rows)
	require.Len(t, events.Connections, 3)
	require.Equal(t, map[string]int{sources.OrientByListeningPort: 3}, events.Orientation)
	for _, c := range events.Connections {
		require.Equal(t, 445, c.LocalPort)
		require.Equal(t, "10.0.0.1", c.LocalAddress)
	}
}

// TestOrientAcrossSources checks that an address learned from a Security
// 5156 event orients a Sysmon connection that the port rule alone gets
// wrong, once both sources' events are added together.
func TestOrientAcrossSources(t *testing.T) {
	t.Parallel()

	const host = "HOST1"

	// The client's port 3000 is lower than the service's 49726.
	sysmon := sources.NewSysmon().Decode([]map[string]string{
		sysmonInbound(t, host, "{svc}", "10.0.0.2", 3000, "10.0.0.1", 49726),
	})
	local, _ := localRemote(sysmon.Connections[0])
	require.Equal(t, side{"10.0.0.2", 3000}, local, "alone, the lower port wins")

	security := sources.NewSecurity().Decode([]map[string]string{
		eventRow(t, "Security", 5156, host, "2020-09-20T16:16:56Z", map[string]string{
			"ProcessID": "704", "Application": `\device\harddiskvolume2\windows\system32\services.exe`, "Direction": "%%14592",
			"SourceAddress": "10.0.0.7", "SourcePort": "1234", "DestAddress": "10.0.0.1", "DestPort": "135", "Protocol": "6",
		}),
	})

	all := sources.NewEvents()
	all.Add(sysmon)
	all.Add(security)
	all.Orient()

	require.Len(t, all.Connections, 2)
	local, remote := localRemote(all.Connections[0])
	require.Equal(t, side{"10.0.0.1", 49726}, local)
	require.Equal(t, side{"10.0.0.2", 3000}, remote)
	require.Equal(t, map[string]int{sources.OrientByAddress: 1}, all.Orientation, "Orient decides again from scratch")
	require.Equal(t, map[string][]string{host: {"10.0.0.1"}}, all.HostAddresses())
}
