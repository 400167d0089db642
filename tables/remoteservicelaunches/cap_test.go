package remoteservicelaunches_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// sysmonRowsQuery selects the `time` of every row the Sysmon source reads.
const sysmonRowsQuery = "SELECT time FROM windows_events WHERE lower(source) = 'microsoft-windows-sysmon/operational' AND eventid IN (1, 3)"

// orderedRowsQuerier passes queries on and keeps the rows of the last query
// that orders its rows.
type orderedRowsQuerier struct {
	next osq.Querier

	mu      sync.Mutex
	queries []string
	ordered []map[string]string
}

func (q *orderedRowsQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	rows, err := q.next.QueryRows(ctx, sql)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queries = append(q.queries, sql)
	if strings.Contains(sql, "ORDER BY") {
		q.ordered = rows
	}
	return rows, err
}

// sysmonTable returns the table over the Sysmon source alone with a row
// cap.
func sysmonTable(q osq.Querier, maxRows int) *remoteservicelaunches.Table {
	return remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier:          q,
		Sources:          []sources.Source{sources.NewSysmon()},
		LocalHost:        "test-host",
		MaxRowsPerSource: maxRows,
	})
}

func TestGenerateCapReadsNewestRows(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, nil)
	const maxRows = 5
	q := &orderedRowsQuerier{next: e}

	_, err := sysmonTable(q, maxRows).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)

	require.Len(t, q.queries, 3, "the clock, an unordered read and an ordered read")
	require.True(t, strings.HasSuffix(q.queries[1], " LIMIT 6"), q.queries[1])
	require.NotContains(t, q.queries[1], "ORDER BY")
	require.True(t, strings.HasSuffix(q.queries[2], " ORDER BY time DESC LIMIT 5"), q.queries[2])

	// The ordered read keeps rows no older than the fifth newest.
	newest, err := e.QueryRows(t.Context(), sysmonRowsQuery+" ORDER BY time DESC LIMIT 1 OFFSET 4")
	require.NoError(t, err)
	threshold, err := strconv.ParseInt(newest[0]["time"], 10, 64)
	require.NoError(t, err)
	require.Len(t, q.ordered, maxRows)
	for _, row := range q.ordered {
		second, err := strconv.ParseInt(row["time"], 10, 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, second, threshold)
	}
}

func TestGenerateCapUnreachedReadsOnce(t *testing.T) {
	t.Parallel()

	e := openEngine(t, testrecordings.EmpirePsExec, nil)
	all, err := e.QueryRows(t.Context(), sysmonRowsQuery)
	require.NoError(t, err)
	q := &orderedRowsQuerier{next: e}

	// A cap equal to the number of rows drops none.
	rows, err := sysmonTable(q, len(all)).Generate(t.Context(), table.QueryContext{})
	require.NoError(t, err)

	require.Len(t, q.queries, 2, "the clock and one unordered read")
	require.NotContains(t, q.queries[1], "ORDER BY")
	require.Len(t, rows, 1, "the Empire PsExec launch")
}
