package remoteservicelaunchsources_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/osquery/osquery-go"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/osquerytest"
	"github.com/svclaunch/svclaunch/internal/windowstest"
)

// TestThroughOsqueryStandIn registers both tables with the osquery
// stand-in over Thrift, as the extension binary does, on a host with ETW
// and Security 5156. osqueryd-style SQL reaches both tables, and their
// queries back to osquery go over the extension's own client.
func TestThroughOsqueryStandIn(t *testing.T) {
	e := setupEngine(t, windowstest.ETWWithSecurity)
	server, err := osquerytest.Start(t.Context(), e, osquerytest.Options{Interval: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, server.Close()) })

	// The stand-in writes its own osquery_flags and osquery_registry rows
	// when it starts. Describing the host again puts back the flags of
	// the set-up; the extension's registry rows are added after this.
	require.NoError(t, windowstest.DescribeHost(t.Context(), e, windowstest.ETWWithSecurity))

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- extension.Run(ctx, extension.Config{
			Socket:   server.Path(),
			Timeout:  5 * time.Second,
			Interval: 200 * time.Millisecond,
			Logger:   slog.New(slog.DiscardHandler),
			Version:  "test",
			Tables: func(q osq.Querier, _ *slog.Logger) ([]*table.Plugin, error) {
				both := newTables(q, nil)
				return []*table.Plugin{both.launches.Plugin(), both.sources.Plugin()}, nil
			},
		})
	}()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})

	waitCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = server.WaitForExtension(waitCtx, extension.Name)
	require.NoError(t, err)

	client, err := osquery.NewClient(server.Path(), 30*time.Second)
	require.NoError(t, err)
	defer client.Close()

	launches, err := client.QueryRows("SELECT pid, parent, parent_path, datetime, process_sources, connection_sources FROM remote_service_launches")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{
		"pid": "9028", "parent": "704", "parent_path": `C:\Windows\System32\services.exe`,
		"datetime": "2020-09-20T16:16:56.5974321Z", "process_sources": "etw", "connection_sources": "security",
	}}, launches)

	sources, err := client.QueryRows("SELECT source, status, rows_read > 0 AS read FROM remote_service_launch_sources ORDER BY source")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{
		{"source": "etw", "status": "ok", "read": "1"},
		{"source": "security", "status": "ok", "read": "1"},
		{"source": "sysmon", "status": "disabled", "read": "0"},
	}, sources)

	blind, err := client.QueryRows("SELECT source, hint FROM remote_service_launch_sources WHERE status != 'ok'")
	require.NoError(t, err)
	require.Len(t, blind, 1)
	require.Contains(t, blind[0]["hint"], "add Microsoft-Windows-Sysmon/Operational to --windows_event_channels")
}
