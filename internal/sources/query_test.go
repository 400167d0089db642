package sources_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sources"
)

const (
	sysmonColumns   = "SELECT time, datetime, source, computer_name, eventid, data FROM windows_events"
	securityColumns = sysmonColumns
	processColumns  = "SELECT pid, parent, path, cmdline, time FROM process_events"
	socketColumns   = "SELECT action, pid, path, family, protocol, local_address, local_port, remote_address, remote_port, time FROM socket_events"
)

func TestQueryGolden(t *testing.T) {
	t.Parallel()

	lowerOnly := sources.Bounds{Lower: 1600618555}
	bothBounds := sources.Bounds{Lower: 1600618555, Upper: 1600618676}
	capped := sources.Bounds{Lower: 1600618555, MaxRows: 50000}
	newestCapped := sources.Bounds{Lower: 1600618555, MaxRows: 50000, NewestFirst: true}

	tests := []struct {
		name   string
		source sources.Source
		bounds sources.Bounds
		want   string
	}{
		{
			name: "sysmon lower bound", source: sources.NewSysmon(), bounds: lowerOnly,
			want: sysmonColumns + " WHERE time >= 1600618555 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3)",
		},
		{
			name: "sysmon both bounds", source: sources.NewSysmon(), bounds: bothBounds,
			want: sysmonColumns + " WHERE time >= 1600618555 AND time <= 1600618676 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3)",
		},
		{
			name: "sysmon row cap", source: sources.NewSysmon(), bounds: capped,
			want: sysmonColumns + " WHERE time >= 1600618555 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3) LIMIT 50000",
		},
		{
			name: "sysmon row cap newest first", source: sources.NewSysmon(), bounds: newestCapped,
			want: sysmonColumns + " WHERE time >= 1600618555 AND lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1,3) ORDER BY time DESC LIMIT 50000",
		},
		{
			name: "security lower bound", source: sources.NewSecurity(), bounds: lowerOnly,
			want: securityColumns + " WHERE time >= 1600618555 AND lower(source) = 'security' AND eventid IN (4688,5156)",
		},
		{
			name: "security both bounds", source: sources.NewSecurity(), bounds: bothBounds,
			want: securityColumns + " WHERE time >= 1600618555 AND time <= 1600618676 AND lower(source) = 'security' AND eventid IN (4688,5156)",
		},
		{
			name: "process_events lower bound", source: sources.NewProcessEvents("web01"), bounds: lowerOnly,
			want: processColumns + " WHERE time >= 1600618555",
		},
		{
			name: "process_events both bounds", source: sources.NewProcessEvents("web01"), bounds: bothBounds,
			want: processColumns + " WHERE time >= 1600618555 AND time <= 1600618676",
		},
		{
			name: "socket_events lower bound", source: sources.NewSocketEvents("web01"), bounds: lowerOnly,
			want: socketColumns + " WHERE time >= 1600618555 AND action = 'accept'",
		},
		{
			name: "socket_events row cap", source: sources.NewSocketEvents("web01"), bounds: capped,
			want: socketColumns + " WHERE time >= 1600618555 AND action = 'accept' LIMIT 50000",
		},
		{
			name: "socket_events row cap newest first", source: sources.NewSocketEvents("web01"), bounds: newestCapped,
			want: socketColumns + " WHERE time >= 1600618555 AND action = 'accept' ORDER BY time DESC LIMIT 50000",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := tt.source.Query(tt.bounds)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestQueryNegativeLowerBound(t *testing.T) {
	t.Parallel()

	got, err := sources.NewProcessEvents("web01").Query(sources.Bounds{Lower: -60})
	require.NoError(t, err)
	require.Equal(t, processColumns+" WHERE time >= (-60)", got)
}

// TestQueriesRunInEngine runs every source's query against osquery's real
// schemas, which catches a column that the table does not have (or only has
// as a hidden column that must be named).
func TestQueriesRunInEngine(t *testing.T) {
	t.Parallel()

	e, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })

	all := append(sources.Windows(), sources.Unix("web01")...)
	for _, source := range all {
		query, err := source.Query(sources.Bounds{Lower: 1, Upper: 2, MaxRows: 10, NewestFirst: true})
		require.NoError(t, err)

		rows, err := e.QueryRows(t.Context(), query)
		require.NoError(t, err, "query of %s: %s", source.Name(), query)
		require.Empty(t, rows)
	}
}

func TestSourceNamesAndTables(t *testing.T) {
	t.Parallel()

	tests := []struct {
		source sources.Source
		name   string
		table  string
	}{
		{source: sources.NewSysmon(), name: "sysmon", table: "windows_events"},
		{source: sources.NewSecurity(), name: "security", table: "windows_events"},
		{source: sources.NewProcessEvents("web01"), name: "process_events", table: "process_events"},
		{source: sources.NewSocketEvents("web01"), name: "socket_events", table: "socket_events"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.name, tt.source.Name())
		require.Equal(t, tt.table, tt.source.Table())
	}
}
