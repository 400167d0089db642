package sourcehealth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openEngine(t *testing.T) *engine.Engine {
	t.Helper()

	e, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// insert adds rows to one of the engine's tables.
func insert(t *testing.T, e *engine.Engine, table string, rows ...map[string]string) {
	t.Helper()
	require.NoError(t, e.Insert(t.Context(), table, rows))
}

// registryTables lists tables in osquery_registry the way osqueryd does,
// with the core table time that every build has.
func registryTables(t *testing.T, e *engine.Engine, names ...string) {
	t.Helper()

	for _, name := range append([]string{"time"}, names...) {
		insert(t, e, "osquery_registry", map[string]string{"registry": "table", "name": name, "owner_uuid": "0", "internal": "0", "active": "1"})
	}
}

// flags sets osquery_flags rows, name then value.
func flags(t *testing.T, e *engine.Engine, nameValues ...string) {
	t.Helper()

	for i := 0; i+1 < len(nameValues); i += 2 {
		insert(t, e, "osquery_flags", map[string]string{"name": nameValues[i], "type": "bool", "value": nameValues[i+1], "default_value": "false", "shell_only": "0"})
	}
}

// subscriber sets the osquery_events rows of a subscriber and its
// publisher.
func subscriber(t *testing.T, e *engine.Engine, name, publisher, active, publisherActive string) {
	t.Helper()

	insert(t, e, "osquery_events",
		map[string]string{"name": name, "publisher": publisher, "type": "subscriber", "subscriptions": "1", "events": "10", "refreshes": "0", "active": active},
		map[string]string{"name": publisher, "publisher": publisher, "type": "publisher", "subscriptions": "1", "events": "10", "refreshes": "0", "active": publisherActive},
	)
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
		return nil, errors.New("no such table: " + q.fail)
	}
	return q.next.QueryRows(ctx, sql)
}

func (q *recordingQuerier) sent() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.queries)
}
