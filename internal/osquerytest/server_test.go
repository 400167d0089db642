package osquerytest_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/osquery/osquery-go"
	genosquery "github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osquerytest"
)

// testTimeout bounds every wait in these tests, so that a hang becomes a
// failure. No test measures how long anything takes.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startStandIn opens an engine and starts a stand-in on it. Both are closed
// when the test ends.
func startStandIn(t *testing.T, opts osquerytest.Options) (*osquerytest.Server, *engine.Engine) {
	t.Helper()
	ctx := testContext(t)

	eng, err := engine.Open(ctx, engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, eng.Close()) })

	s, err := osquerytest.Start(ctx, eng, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, eng
}

// newClient connects a second osquery-go client to the stand-in, as an
// extension does for its own queries.
func newClient(t *testing.T, s *osquerytest.Server) *osquery.ExtensionManagerClient {
	t.Helper()
	client, err := osquery.NewClient(s.Path(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client
}

// inProcessExtension is an osquery-go extension server running in the test
// process.
type inProcessExtension struct {
	server *osquery.ExtensionManagerServer
	uuid   genosquery.ExtensionRouteUUID
	done   chan error // receives Run's result
}

// startExtension runs an osquery-go extension server against the stand-in
// and waits until it is registered and responds to pings.
func startExtension(t *testing.T, s *osquerytest.Server, name string, opts []osquery.ServerOption, plugins ...osquery.OsqueryPlugin) *inProcessExtension {
	t.Helper()
	opts = append([]osquery.ServerOption{
		osquery.ServerTimeout(5 * time.Second),
		osquery.ServerPingInterval(100 * time.Millisecond),
	}, opts...)
	server, err := osquery.NewExtensionManagerServer(name, s.Path(), opts...)
	require.NoError(t, err)
	server.RegisterPlugin(plugins...)

	ext := &inProcessExtension{server: server, done: make(chan error, 1)}
	go func() { ext.done <- server.Run() }()
	t.Cleanup(func() {
		_ = server.Shutdown(context.Background())
		<-ext.done
	})

	ext.uuid, err = s.WaitForExtension(testContext(t), name)
	require.NoError(t, err)
	return ext
}

// itemsTable is a table plugin that records the query context of each
// generate call.
type itemsTable struct {
	mu       sync.Mutex
	contexts []table.QueryContext
	err      error
}

const itemsTableName = "osquerytest_items"

func (it *itemsTable) plugin() *table.Plugin {
	return table.NewPlugin(itemsTableName,
		[]table.ColumnDefinition{table.TextColumn("name"), table.IntegerColumn("size")},
		func(ctx context.Context, queryContext table.QueryContext) ([]map[string]string, error) {
			it.mu.Lock()
			defer it.mu.Unlock()
			it.contexts = append(it.contexts, queryContext)
			if it.err != nil {
				return nil, it.err
			}
			return []map[string]string{{"name": "x", "size": "1"}, {"name": "y", "size": "2"}}, nil
		},
	)
}

func (it *itemsTable) seen() []table.QueryContext {
	it.mu.Lock()
	defer it.mu.Unlock()
	return append([]table.QueryContext(nil), it.contexts...)
}

func TestQueryExtensionTableWithConstraint(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	items := &itemsTable{}
	startExtension(t, s, "osquerytest_ext", nil, items.plugin())

	response, err := newClient(t, s).QueryContext(testContext(t), "SELECT * FROM osquerytest_items WHERE name = 'x'")

	require.NoError(t, err)
	require.Equal(t, int32(0), response.GetStatus().GetCode(), response.GetStatus().GetMessage())
	require.Equal(t, []map[string]string{{"name": "x", "size": "1"}}, []map[string]string(response.GetResponse()))

	// The column declares no options, so osqueryd's default INDEX rule
	// makes the equality constraint reach the extension.
	contexts := items.seen()
	require.Len(t, contexts, 1)
	require.Equal(t, table.ConstraintList{
		Affinity:    table.ColumnTypeText,
		Constraints: []table.Constraint{{Operator: table.OperatorEquals, Expression: "x"}},
	}, contexts[0].Constraints["name"])
	require.Empty(t, contexts[0].Constraints["size"].Constraints)
}

func TestQueryExtensionTableError(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	items := &itemsTable{err: errors.New("disk on fire")}
	startExtension(t, s, "osquerytest_ext", nil, items.plugin())

	response, err := newClient(t, s).QueryContext(testContext(t), "SELECT * FROM osquerytest_items")

	require.NoError(t, err)
	require.Equal(t, int32(1), response.GetStatus().GetCode())
	require.Equal(t, "error generating table: disk on fire", response.GetStatus().GetMessage())
	require.Empty(t, response.GetResponse())
}

func TestQueryBadSQL(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	client := newClient(t, s)

	tests := []struct {
		name    string
		sql     string
		message string
	}{
		{"syntax error", "SELEC * FROM time", `near "SELEC": syntax error`},
		{"unknown table", "SELECT * FROM no_such_table", "no such table: no_such_table"},
		{"unknown column", "SELECT no_such_column FROM time", "no such column: no_such_column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			response, err := client.QueryContext(testContext(t), tt.sql)

			require.NoError(t, err)
			require.Equal(t, int32(1), response.GetStatus().GetCode())
			require.Equal(t, tt.message, response.GetStatus().GetMessage())
			require.Empty(t, response.GetResponse())
		})
	}
}

func TestQueryRowsThroughSecondClient(t *testing.T) {
	t.Parallel()
	s, eng := startStandIn(t, osquerytest.Options{})
	eng.SetClock(1600000000)

	// Like svclaunch's table, this generate function runs its own query
	// against osquery while osquery waits for the table's rows.
	nested := newClient(t, s)
	clock := table.NewPlugin("osquerytest_clock",
		[]table.ColumnDefinition{table.BigIntColumn("unix_time")},
		func(ctx context.Context, queryContext table.QueryContext) ([]map[string]string, error) {
			row, err := nested.QueryRowContext(ctx, "SELECT unix_time FROM time")
			if err != nil {
				return nil, err
			}
			return []map[string]string{row}, nil
		},
	)
	startExtension(t, s, "osquerytest_ext", nil, clock)

	rows, err := newClient(t, s).QueryRowsContext(testContext(t), "SELECT unix_time FROM osquerytest_clock")

	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"unix_time": "1600000000"}}, rows)
}

func TestRegisterDuplicateNameRejected(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	startExtension(t, s, "osquerytest_ext", nil, (&itemsTable{}).plugin())

	// osquery-go's Start reports the status of the rejected registration.
	second, err := osquery.NewExtensionManagerServer("osquerytest_ext", s.Path(), osquery.ServerTimeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Shutdown(context.Background()) })
	err = second.Start()
	require.EqualError(t, err, "status 1 registering extension: Duplicate extension registered")

	extensions, err := newClient(t, s).ExtensionsContext(testContext(t))
	require.NoError(t, err)
	require.Len(t, extensions, 1)
}

func TestRegisterRejections(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	startExtension(t, s, "osquerytest_ext", nil, (&itemsTable{}).plugin())
	client := newClient(t, s)

	columns := genosquery.ExtensionPluginResponse{{"id": "column", "name": "a", "type": "TEXT", "op": "0"}}
	tests := []struct {
		name     string
		info     genosquery.InternalExtensionInfo
		registry genosquery.ExtensionRegistry
		message  string
	}{
		{
			name:     "core table name",
			info:     genosquery.InternalExtensionInfo{Name: "osquerytest_other"},
			registry: genosquery.ExtensionRegistry{"table": {"processes": columns}},
			message:  "Failed adding registry: Registry item processes conflicts with another item of the same name.",
		},
		{
			name:     "table of another extension",
			info:     genosquery.InternalExtensionInfo{Name: "osquerytest_other"},
			registry: genosquery.ExtensionRegistry{"table": {itemsTableName: columns}},
			message:  "Failed adding registry: Registry item osquerytest_items conflicts with another item of the same name.",
		},
		{
			name:     "core logger name",
			info:     genosquery.InternalExtensionInfo{Name: "osquerytest_other"},
			registry: genosquery.ExtensionRegistry{"logger": {"filesystem": {}}},
			message:  "Failed adding registry: Registry item filesystem conflicts with another item of the same name.",
		},
		{
			name:     "unknown registry",
			info:     genosquery.InternalExtensionInfo{Name: "osquerytest_other"},
			registry: genosquery.ExtensionRegistry{"no_such_registry": {"a": columns}},
			message:  "Failed adding registry: Unknown registry: no_such_registry",
		},
		{
			name:     "table without routes",
			info:     genosquery.InternalExtensionInfo{Name: "osquerytest_other"},
			registry: genosquery.ExtensionRegistry{"table": {"osquerytest_empty": {}}},
			message:  "Failed adding registry: Invalid route info",
		},
		{
			name:     "old SDK",
			info:     genosquery.InternalExtensionInfo{Name: "osquerytest_other", SdkVersion: "1.7.6"},
			registry: genosquery.ExtensionRegistry{},
			message:  "Incompatible extension SDK version",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, err := client.RegisterExtensionContext(testContext(t), &tt.info, tt.registry)

			require.NoError(t, err)
			require.Equal(t, int32(1), status.GetCode())
			require.Equal(t, tt.message, status.GetMessage())
		})
	}

	extensions, err := client.ExtensionsContext(testContext(t))
	require.NoError(t, err)
	require.Len(t, extensions, 1)
}

func TestDiscoveryTablesListExtension(t *testing.T) {
	t.Parallel()
	s, eng := startStandIn(t, osquerytest.Options{})
	ext := startExtension(t, s, "osquerytest_ext", []osquery.ServerOption{osquery.ExtensionVersion("1.2.3")}, (&itemsTable{}).plugin())
	uuid := strconv.FormatInt(int64(ext.uuid), 10)

	extensions, err := newClient(t, s).QueryRowsContext(testContext(t), "SELECT uuid, name, version, sdk_version, path, type FROM osquery_extensions ORDER BY uuid")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{
		{"uuid": "0", "name": "core", "version": osquerytest.DefaultVersion, "sdk_version": "0.0.0", "path": s.Path(), "type": "core"},
		{"uuid": uuid, "name": "osquerytest_ext", "version": "1.2.3", "sdk_version": "", "path": s.Path() + "." + uuid, "type": "extension"},
	}, extensions)

	plugins, err := eng.QueryRows(testContext(t), "SELECT registry, owner_uuid, internal, active FROM osquery_registry WHERE name = 'osquerytest_items'")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"registry": "table", "owner_uuid": uuid, "internal": "0", "active": "1"}}, plugins)

	core, err := eng.QueryRows(testContext(t), "SELECT owner_uuid FROM osquery_registry WHERE registry = 'table' AND name = 'windows_events'")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"owner_uuid": "0"}}, core)
}

func TestDeregisterRemovesExtension(t *testing.T) {
	t.Parallel()
	s, eng := startStandIn(t, osquerytest.Options{})
	ext := startExtension(t, s, "osquerytest_ext", nil, (&itemsTable{}).plugin())
	client := newClient(t, s)

	// osquery-go's Shutdown deregisters before it closes its socket.
	require.NoError(t, ext.server.Shutdown(testContext(t)))

	extensions, err := client.ExtensionsContext(testContext(t))
	require.NoError(t, err)
	require.Empty(t, extensions)

	rows, err := eng.QueryRows(testContext(t), "SELECT name FROM osquery_extensions")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"name": "core"}}, rows)

	status, err := client.DeregisterExtensionContext(testContext(t), ext.uuid)
	require.NoError(t, err)
	require.Equal(t, int32(1), status.GetCode())
	require.Equal(t, "No extension UUID found", status.GetMessage())
}

// crashingClient is a manager client whose deregistration never reaches the
// manager, so an extension that shuts down with it vanishes the way a killed
// extension process does.
type crashingClient struct {
	*osquery.ExtensionManagerClient
}

func (crashingClient) DeregisterExtension(genosquery.ExtensionRouteUUID) (*genosquery.ExtensionStatus, error) {
	return &genosquery.ExtensionStatus{Code: 0}, nil
}

func TestVanishedExtensionRemoved(t *testing.T) {
	t.Parallel()
	s, eng := startStandIn(t, osquerytest.Options{Interval: 200 * time.Millisecond})
	registration := newClient(t, s)
	ext := startExtension(t, s, "osquerytest_ext", []osquery.ServerOption{osquery.WithClient(crashingClient{registration})}, (&itemsTable{}).plugin())
	client := newClient(t, s)

	rows, err := client.QueryRowsContext(testContext(t), "SELECT name FROM osquerytest_items")
	require.NoError(t, err)
	require.Len(t, rows, 2)

	require.NoError(t, ext.server.Shutdown(testContext(t)))

	// The watcher finds the extension's socket gone on its next pass.
	require.Eventually(t, func() bool {
		extensions, err := client.ExtensionsContext(testContext(t))
		return err == nil && len(extensions) == 0
	}, testTimeout, 50*time.Millisecond)

	rows, err = eng.QueryRows(testContext(t), "SELECT name FROM osquery_extensions")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"name": "core"}}, rows)

	response, err := client.QueryContext(testContext(t), "SELECT name FROM osquerytest_items")
	require.NoError(t, err)
	require.Equal(t, int32(1), response.GetStatus().GetCode())
	require.Equal(t, "no such table: osquerytest_items", response.GetStatus().GetMessage())
}

func TestReregisterAfterRemoval(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	first := startExtension(t, s, "osquerytest_ext", nil, (&itemsTable{}).plugin())
	require.NoError(t, first.server.Shutdown(testContext(t)))

	items := &itemsTable{}
	second := startExtension(t, s, "osquerytest_ext", nil, items.plugin())
	rows, err := newClient(t, s).QueryRowsContext(testContext(t), "SELECT name FROM osquerytest_items WHERE name = 'y'")

	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"name": "y"}}, rows)
	require.Len(t, items.seen(), 1)
	require.NotEqual(t, first.uuid, second.uuid)
}

func TestPingAndOptions(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{Interval: 1500 * time.Millisecond})
	client := newClient(t, s)

	status, err := client.PingContext(testContext(t))
	require.NoError(t, err)
	require.Equal(t, int32(0), status.GetCode())
	require.Equal(t, "pong", status.GetMessage())

	options, err := client.OptionsContext(testContext(t))
	require.NoError(t, err)
	require.Equal(t, s.Path(), options["extensions_socket"].GetValue())
	require.Equal(t, "2", options["extensions_interval"].GetValue())
	require.Equal(t, "3", options["extensions_timeout"].GetValue())

	flags, err := client.QueryRowsContext(testContext(t), "SELECT value FROM osquery_flags WHERE name = 'extensions_socket'")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"value": s.Path()}}, flags)
}

func TestCallRoutesToExtension(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	startExtension(t, s, "osquerytest_ext", nil, (&itemsTable{}).plugin())
	client := newClient(t, s)

	response, err := client.CallContext(testContext(t), "table", itemsTableName, genosquery.ExtensionPluginRequest{"action": "generate", "context": "{}"})
	require.NoError(t, err)
	require.Equal(t, int32(0), response.GetStatus().GetCode(), response.GetStatus().GetMessage())
	require.Len(t, response.GetResponse(), 2)

	response, err = client.CallContext(testContext(t), "table", "no_such_table", genosquery.ExtensionPluginRequest{"action": "generate"})
	require.NoError(t, err)
	require.Equal(t, int32(1), response.GetStatus().GetCode())
	require.Equal(t, "Cannot call registry item: no_such_table", response.GetStatus().GetMessage())
}

func TestStopEndsExtension(t *testing.T) {
	t.Parallel()
	s, _ := startStandIn(t, osquerytest.Options{})
	ext := startExtension(t, s, "osquerytest_ext", nil, (&itemsTable{}).plugin())

	s.Stop()

	// osquery-go's Run pings the manager every 100 ms here and returns
	// once a ping fails.
	select {
	case err := <-ext.done:
		require.ErrorContains(t, err, "extension ping failed")
		ext.done <- err // for the cleanup registered by startExtension
	case <-testContext(t).Done():
		t.Fatal("extension did not notice that the manager stopped")
	}

	_, err := os.Stat(s.Path())
	require.ErrorIs(t, err, os.ErrNotExist)

	_, err = s.WaitForExtension(testContext(t), "osquerytest_ext")
	require.ErrorContains(t, err, "stopped")
}
