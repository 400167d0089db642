package remoteservicelaunchsources_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
	"github.com/svclaunch/svclaunch/internal/windowstest"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunchsources"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// osquery-go's Run reads only the first result of its serving and
		// pinging goroutines, so the other one stays blocked after Run
		// returns (TestThroughOsqueryStandIn runs the extension).
		goleak.IgnoreAnyFunction("github.com/osquery/osquery-go.(*ExtensionManagerServer).Run.func1"),
		goleak.IgnoreAnyFunction("github.com/osquery/osquery-go.(*ExtensionManagerServer).Run.func2"),
	)
}

func loadBatch(t *testing.T, recording string) *telemetry.Batch {
	t.Helper()
	return windowstest.LoadRecording(t, recording)
}

func openEngine(t *testing.T) *engine.Engine {
	t.Helper()

	e, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// setupEngine returns an engine holding the Empire PsExec recording as a
// Windows host with setup stores it.
func setupEngine(t *testing.T, setup windowstest.Setup) *engine.Engine {
	t.Helper()

	e := openEngine(t)
	require.NoError(t, windowstest.Load(t.Context(), e, loadBatch(t, testrecordings.EmpirePsExec), setup, windowstest.EmpireServices))
	return e
}

// tables holds both tables as the extension builds them: sharing the
// querier, the discovery and the statistics.
type tables struct {
	launches *remoteservicelaunches.Table
	sources  *remoteservicelaunchsources.Table
}

// newTables builds both tables over the Windows sources, as they run on
// WORKSTATION6, reading q. edit may change the detection's configuration.
func newTables(q osq.Querier, edit func(*remoteservicelaunches.Config)) tables {
	cfg := remoteservicelaunches.Config{
		Querier:   q,
		Sources:   sources.Windows(),
		LocalHost: "WORKSTATION6",
		Discovery: sourcehealth.NewDiscovery(q, sourcehealth.DiscoveryOptions{}),
	}
	if edit != nil {
		edit(&cfg)
	}
	launches := remoteservicelaunches.New(cfg)
	return tables{launches: launches, sources: remoteservicelaunchsources.New(remoteservicelaunchsources.ConfigFor(launches.Config()))}
}

// attach registers a plugin in the engine the way osqueryd registers an
// extension table: its columns with their option bits, and generate calls
// through the plugin's Call with osquery's context JSON.
func attach(t *testing.T, e *engine.Engine, plugin *table.Plugin) {
	t.Helper()

	var columns []engine.Column
	for _, route := range plugin.Routes() {
		options, err := strconv.Atoi(route["op"])
		require.NoError(t, err, route["name"])
		columns = append(columns, engine.Column{Name: route["name"], Type: route["type"], Options: options})
	}

	generate := func(ctx context.Context, queryContextJSON string) ([]map[string]string, error) {
		response := plugin.Call(ctx, osquery.ExtensionPluginRequest{"action": "generate", "context": queryContextJSON})
		if response.Status.Code != 0 {
			return nil, errors.New(response.Status.Message)
		}
		return response.Response, nil
	}
	require.NoError(t, e.AttachTable(plugin.Name(), columns, generate))
}

// bySource indexes the rows of remote_service_launch_sources by source.
func bySource(t *testing.T, rows []map[string]string) map[string]map[string]string {
	t.Helper()

	out := map[string]map[string]string{}
	for _, row := range rows {
		out[row["source"]] = row
	}
	require.Len(t, out, len(rows), "one row per source")
	return out
}

// recordingQuerier passes queries to another Querier and records them. A
// query that contains fail returns an error.
type recordingQuerier struct {
	next osq.Querier
	fail string

	mu      sync.Mutex
	queries []string
}

func (q *recordingQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	q.mu.Lock()
	q.queries = append(q.queries, sql)
	q.mu.Unlock()

	if q.fail != "" && strings.Contains(sql, q.fail) {
		return nil, errors.New("query returned error: database disk image is malformed")
	}
	return q.next.QueryRows(ctx, sql)
}

// rowJSON renders rows for failure messages.
func rowJSON(rows any) string {
	out, _ := json.MarshalIndent(rows, "", "  ")
	return string(out)
}
