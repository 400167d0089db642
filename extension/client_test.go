package extension

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/osq"
)

// largeRows is enough rows of 200 bytes to fill the query client's 64 KiB
// buffer many times over.
const largeRows = 20_000

func TestClientQuerierReadsLargeResult(t *testing.T) {
	server := startStandIn(t)
	querier, err := newClientQuerier(server.Path(), 10*time.Second, time.Second, testLogger(t))
	require.NoError(t, err)
	defer querier.Close()

	rows, err := querier.QueryRows(t.Context(), fmt.Sprintf(
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) SELECT i, printf('%%0200d', i) AS padding FROM n",
		largeRows))

	require.NoError(t, err)
	require.Len(t, rows, largeRows)
	assert.Equal(t, strconv.Itoa(largeRows), rows[largeRows-1]["i"])
	assert.Len(t, rows[largeRows-1]["padding"], 200)

	// The buffered connection stays in step for the next call.
	again, err := querier.QueryRows(t.Context(), "SELECT unix_time FROM time")
	require.NoError(t, err)
	assert.Equal(t, []map[string]string{{"unix_time": fmt.Sprint(standInClock)}}, again)
}

func TestRunReturnsLargeTable(t *testing.T) {
	server := startStandIn(t)
	largeTable := func(osq.Querier, *slog.Logger) ([]*table.Plugin, error) {
		generate := func(context.Context, table.QueryContext) ([]map[string]string, error) {
			rows := make([]map[string]string, largeRows)
			for i := range rows {
				rows[i] = map[string]string{"value": fmt.Sprintf("%0200d", i)}
			}
			return rows, nil
		}
		return []*table.Plugin{probeTable("svclaunch_large", generate)}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// Pings once a second, so that a slow machine does not fail a
		// ping while the large response is written.
		done <- Run(ctx, Config{
			Socket:   server.Path(),
			Timeout:  3 * time.Second,
			Interval: time.Second,
			Logger:   testLogger(t),
			Tables:   largeTable,
		})
	}()
	defer func() {
		cancel()
		assert.NoError(t, <-done)
	}()
	waitCtx, waitCancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer waitCancel()
	_, err := server.WaitForExtension(waitCtx, Name)
	require.NoError(t, err)

	rows := queryStandIn(t, server, "SELECT value FROM svclaunch_large")

	require.Len(t, rows, largeRows)
	assert.Equal(t, fmt.Sprintf("%0200d", largeRows-1), rows[largeRows-1]["value"])
}
