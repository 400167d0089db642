package remoteservicelaunches_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/windowstest"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

func loadBatch(t *testing.T, recording string) *telemetry.Batch {
	t.Helper()
	return windowstest.LoadRecording(t, recording)
}

// openEngine returns an engine holding the recording's rows for which keep
// returns true (all rows when keep is nil), with its clock at the
// recording's newest row.
func openEngine(t *testing.T, recording string, keep func(table string, row map[string]string) bool) *engine.Engine {
	t.Helper()

	return openEngineOrdered(t, recording, keep, false)
}

// openEngineOrdered is openEngine that can insert each table's rows in
// reverse order.
func openEngineOrdered(t *testing.T, recording string, keep func(table string, row map[string]string) bool, reverse bool) *engine.Engine {
	t.Helper()

	batch := loadBatch(t, recording)
	e := openEmptyEngine(t)
	for name, rows := range batch.Rows {
		var kept []map[string]string
		for _, row := range rows {
			if keep == nil || keep(name, row) {
				kept = append(kept, row)
			}
		}
		if reverse {
			slices.Reverse(kept)
		}
		if len(kept) > 0 {
			require.NoError(t, e.Insert(t.Context(), name, kept))
		}
	}
	e.SetClock(batch.Clock)
	return e
}

func openEmptyEngine(t *testing.T) *engine.Engine {
	t.Helper()

	e, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// withoutChannel keeps every row except windows_events rows of channel.
func withoutChannel(channel string) func(string, map[string]string) bool {
	return func(table string, row map[string]string) bool {
		return table != telemetry.WindowsEventsTable || !strings.EqualFold(row["source"], channel)
	}
}

// windowsTable returns the table over the Windows sources reading q.
func windowsTable(q osq.Querier) *remoteservicelaunches.Table {
	return remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier:   q,
		Sources:   sources.Windows(),
		LocalHost: "test-host",
	})
}

// attach registers the table's plugin in the engine the way osqueryd
// registers an extension table: its columns with their option bits, and
// generate calls through the plugin's Call with osquery's context JSON.
func attach(t *testing.T, e *engine.Engine, tbl *remoteservicelaunches.Table) {
	t.Helper()

	plugin := tbl.Plugin()
	var columns []engine.Column
	for _, c := range remoteservicelaunches.Columns() {
		columns = append(columns, engine.Column{Name: c.Name, Type: string(c.Type), Options: int(c.Options())})
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

// recordingQuerier passes queries to another Querier and records them.
type recordingQuerier struct {
	next osq.Querier
	// fail makes every query containing this text fail; "" fails none.
	fail string

	mu      sync.Mutex
	queries []string
}

func (q *recordingQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	q.mu.Lock()
	q.queries = append(q.queries, sql)
	q.mu.Unlock()

	if q.fail != "" && strings.Contains(sql, q.fail) {
		return nil, errors.New("query returned error: no such table: windows_events")
	}
	return q.next.QueryRows(ctx, sql)
}

func (q *recordingQuerier) sent() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.queries)
}

// timeConstraint returns a query context with one constraint on time.
func timeConstraint(op table.Operator, value string) table.QueryContext {
	return table.QueryContext{Constraints: map[string]table.ConstraintList{
		"time": {Affinity: table.ColumnTypeBigInt, Constraints: []table.Constraint{{Operator: op, Expression: value}}},
	}}
}

// rowJSON renders rows for failure messages.
func rowJSON(rows []map[string]string) string {
	out, _ := json.MarshalIndent(rows, "", "  ")
	return string(out)
}
