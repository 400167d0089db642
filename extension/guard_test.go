package extension

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/osq"
)

var generateRequest = osquery.ExtensionPluginRequest{"action": "generate", "context": "{}"}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func probeTable(name string, generate table.GenerateFunc) *table.Plugin {
	return table.NewPlugin(name,
		[]table.ColumnDefinition{table.TextColumn("value", table.ColumnDescription("Probe value."))},
		generate)
}

func TestGuardedTableReturnsRows(t *testing.T) {
	t.Parallel()
	plugin := probeTable("probe", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		return []map[string]string{{"value": "a"}}, nil
	})
	guarded := newGuardedTable(plugin, time.Minute, make(chan struct{}, 1), discardLogger())

	response := guarded.Call(t.Context(), generateRequest)

	require.NotNil(t, response.Status)
	assert.Equal(t, int32(0), response.Status.Code, response.Status.Message)
	assert.Equal(t, osquery.ExtensionPluginResponse{{"value": "a"}}, response.Response)
}

func TestGuardedTableTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	plugin := probeTable("probe", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		// Ignores its context on purpose: the wrapper must not rely on
		// generate honouring the deadline.
		<-release
		return nil, nil
	})
	guarded := newGuardedTable(plugin, 50*time.Millisecond, make(chan struct{}, 1), discardLogger())

	response := guarded.Call(t.Context(), generateRequest)

	require.NotNil(t, response.Status)
	assert.Equal(t, int32(1), response.Status.Code)
	assert.Contains(t, response.Status.Message, "table probe did not finish within 50ms")
}

func TestGuardedTableRecoversPanic(t *testing.T) {
	t.Parallel()
	plugin := probeTable("probe", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		var rows []map[string]string
		return []map[string]string{rows[3]}, nil // index out of range
	})
	guarded := newGuardedTable(plugin, time.Minute, make(chan struct{}, 1), discardLogger())

	response := guarded.Call(t.Context(), generateRequest)

	require.NotNil(t, response.Status)
	assert.Equal(t, int32(1), response.Status.Code)
	assert.Contains(t, response.Status.Message, "table probe failed with an internal error")
	assert.Contains(t, response.Status.Message, "index out of range")
}

func TestGuardedTableCapsConcurrentCalls(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	blocking := probeTable("blocking", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		close(started)
		<-release
		return []map[string]string{{"value": "late"}}, nil
	})
	quick := probeTable("quick", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		return []map[string]string{{"value": "quick"}}, nil
	})
	slots := make(chan struct{}, 1)
	guardedBlocking := newGuardedTable(blocking, time.Minute, slots, discardLogger())
	guardedQuick := newGuardedTable(quick, 50*time.Millisecond, slots, discardLogger())

	first := make(chan osquery.ExtensionResponse, 1)
	go func() { first <- guardedBlocking.Call(context.Background(), generateRequest) }()
	<-started

	// The only slot is taken, so the second table cannot start.
	rejected := guardedQuick.Call(t.Context(), generateRequest)
	require.NotNil(t, rejected.Status)
	assert.Equal(t, int32(1), rejected.Status.Code)
	assert.Contains(t, rejected.Status.Message, "1 calls of this extension are still running")

	close(release)
	firstResponse := <-first
	require.NotNil(t, firstResponse.Status)
	assert.Equal(t, int32(0), firstResponse.Status.Code, firstResponse.Status.Message)

	// The slot is free again.
	accepted := guardedQuick.Call(t.Context(), generateRequest)
	require.NotNil(t, accepted.Status)
	assert.Equal(t, int32(0), accepted.Status.Code, accepted.Status.Message)
}

func TestGuardedTableHoldsSlotAfterTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := probeTable("slow", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		<-release
		return nil, nil
	})
	slots := make(chan struct{}, 1)
	guarded := newGuardedTable(slow, 50*time.Millisecond, slots, discardLogger())

	timedOut := guarded.Call(t.Context(), generateRequest)
	require.NotNil(t, timedOut.Status)
	assert.Contains(t, timedOut.Status.Message, "did not finish within")

	// The abandoned generate still runs and still holds the slot.
	assert.Len(t, slots, 1)

	close(release)
	require.Eventually(t, func() bool { return len(slots) == 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestGuardedTablePassesColumnsThrough(t *testing.T) {
	t.Parallel()
	plugin := probeTable("probe", func(context.Context, table.QueryContext) ([]map[string]string, error) {
		panic("generate must not run for the columns action")
	})
	guarded := newGuardedTable(plugin, time.Minute, make(chan struct{}, 1), discardLogger())

	response := guarded.Call(t.Context(), osquery.ExtensionPluginRequest{"action": "columns"})

	require.NotNil(t, response.Status)
	assert.Equal(t, int32(0), response.Status.Code)
	assert.Equal(t, plugin.Routes(), osquery.ExtensionPluginResponse(response.Response))
}

func TestBuildPluginsRejectsDuplicateNames(t *testing.T) {
	t.Parallel()
	generate := func(context.Context, table.QueryContext) ([]map[string]string, error) { return nil, nil }
	cfg := Config{
		Tables: func(osq.Querier, *slog.Logger) ([]*table.Plugin, error) {
			return []*table.Plugin{probeTable("same", generate), probeTable("same", generate)}, nil
		},
	}.withDefaults()

	_, err := buildPlugins(cfg, nil)

	require.Error(t, err)
	assert.Contains(t, err.Error(), `table name "same" is registered twice`)
}
