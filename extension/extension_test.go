package extension

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/osquery/osquery-go"
	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/osquerytest"
)

// standInClock is the stand-in's unix_time, so that a row read back through
// the extension's own client differs from the wall clock.
const standInClock = 1600000000

// testTimeout is the --timeout of the stand-in and of Run in these tests.
// The stand-in's registration writes to its SQLite engine, which took 3 s
// on a loaded test machine, so osqueryd's 1 s would make Run fail at random.
const testTimeout = 10 * time.Second

// startStandIn starts the osquery stand-in with a short watcher interval and
// returns it; the test's cleanup closes it and its engine.
func startStandIn(t *testing.T) *osquerytest.Server {
	t.Helper()

	eng, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, eng.Close()) })
	eng.SetClock(standInClock)

	server, err := osquerytest.Start(t.Context(), eng, osquerytest.Options{
		Logger:   testLogger(t),
		Timeout:  testTimeout,
		Interval: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, server.Close()) })
	return server
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// clockTable returns a table whose generate reads unix_time from osqueryd
// through the extension's querier, so a row proves both directions work.
func clockTable(q osq.Querier, _ *slog.Logger) ([]*table.Plugin, error) {
	generate := func(ctx context.Context, _ table.QueryContext) ([]map[string]string, error) {
		rows, err := q.QueryRows(ctx, "SELECT unix_time FROM time")
		if err != nil {
			return nil, err
		}
		return []map[string]string{{"value": rows[0]["unix_time"]}}, nil
	}
	return []*table.Plugin{probeTable("svclaunch_probe", generate)}, nil
}

// startRun starts Run against the stand-in and waits for the registration.
// It returns the cancel function of Run's context and the channel that
// receives Run's result.
func startRun(t *testing.T, server *osquerytest.Server) (context.CancelFunc, <-chan error) {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Socket:   server.Path(),
			Timeout:  testTimeout,
			Interval: 200 * time.Millisecond,
			Logger:   testLogger(t),
			Version:  "test",
			Tables:   clockTable,
		})
	}()

	waitCtx, waitCancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer waitCancel()
	_, err := server.WaitForExtension(waitCtx, Name)
	require.NoError(t, err)
	return cancel, done
}

func queryStandIn(t *testing.T, server *osquerytest.Server, sql string) []map[string]string {
	t.Helper()
	client, err := osquery.NewClient(server.Path(), 10*time.Second)
	require.NoError(t, err)
	defer client.Close()
	rows, err := client.QueryRows(sql)
	require.NoError(t, err, sql)
	return rows
}

func TestRunServesTablesUntilCancelled(t *testing.T) {
	server := startStandIn(t)
	cancel, done := startRun(t, server)

	rows := queryStandIn(t, server, "SELECT value FROM svclaunch_probe")
	assert.Equal(t, []map[string]string{{"value": fmt.Sprint(standInClock)}}, rows)

	registered := queryStandIn(t, server, "SELECT name, version FROM osquery_extensions WHERE name = 'svclaunch'")
	assert.Equal(t, []map[string]string{{"name": "svclaunch", "version": "test"}}, registered)

	cancel()
	require.NoError(t, <-done)

	// A clean stop deregisters, so osqueryd drops the table at once
	// instead of after two failed pings.
	remaining := queryStandIn(t, server, "SELECT name FROM osquery_extensions WHERE name = 'svclaunch'")
	assert.Empty(t, remaining)
}

func TestRunFailsWhenOsqueryStops(t *testing.T) {
	server := startStandIn(t)
	_, done := startRun(t, server)

	server.Stop()

	err := <-done
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lost osquery at "+server.Path())
}

func TestRunFailsWhenSocketNeverAppears(t *testing.T) {
	t.Parallel()
	socket := filepath.Join(t.TempDir(), "missing.em")

	err := Run(t.Context(), Config{
		Socket:  socket,
		Timeout: 300 * time.Millisecond,
		Logger:  discardLogger(),
		Tables:  clockTable,
	})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "osquery socket "+socket+" did not respond to a ping within 300ms")
	assert.Contains(t, err.Error(), "no such file or directory")
}

func TestRunStopsCleanlyWhileWaiting(t *testing.T) {
	t.Parallel()
	socket := filepath.Join(t.TempDir(), "missing.em")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	err := Run(ctx, Config{
		Socket:  socket,
		Timeout: time.Minute,
		Logger:  discardLogger(),
		Tables:  clockTable,
	})

	assert.NoError(t, err)
}

func TestRunRejectsMissingSocket(t *testing.T) {
	t.Parallel()

	err := Run(t.Context(), Config{Logger: discardLogger(), Tables: clockTable})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "pass --socket PATH")
}

// syncBuffer is a bytes.Buffer that a logger and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestClientQuerierReconnectsAfterTransportError(t *testing.T) {
	server := startStandIn(t)
	var logs syncBuffer
	querier, err := newClientQuerier(server.Path(), 10*time.Second, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer querier.Close()

	// A closed connection fails the way one broken by osqueryd does.
	client, err := querier.acquire()
	require.NoError(t, err)
	client.Close()
	querier.release(client)
	rows, err := querier.QueryRows(t.Context(), "SELECT unix_time FROM time")

	require.NoError(t, err)
	assert.Equal(t, []map[string]string{{"unix_time": fmt.Sprint(standInClock)}}, rows)
	assert.Contains(t, logs.String(), "reconnecting and retrying once")
}

func TestClientQuerierReturnsQueryError(t *testing.T) {
	server := startStandIn(t)
	var logs syncBuffer
	querier, err := newClientQuerier(server.Path(), 10*time.Second, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer querier.Close()

	_, err = querier.QueryRows(t.Context(), "SELECT * FROM no_such_table")

	require.Error(t, err)
	assert.Contains(t, err.Error(), "query returned error")
	assert.Contains(t, err.Error(), "no_such_table")
	assert.NotContains(t, logs.String(), "reconnecting", "an osquery error must not trigger a reconnect")
}

func TestRunFailsOnDuplicateRegistration(t *testing.T) {
	server := startStandIn(t)
	_, done := startRun(t, server)

	err := Run(t.Context(), Config{
		Socket:  server.Path(),
		Timeout: testTimeout,
		Logger:  testLogger(t),
		Tables:  clockTable,
	})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "registering with osquery at "+server.Path())

	// The first copy keeps serving.
	rows := queryStandIn(t, server, "SELECT value FROM svclaunch_probe")
	assert.Len(t, rows, 1)
	server.Stop()
	require.Error(t, <-done)
}

func TestClientQuerierAbandonsQueryAtDeadline(t *testing.T) {
	server := startStandIn(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseTable := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseTable()
	slowTable := func(osq.Querier, *slog.Logger) ([]*table.Plugin, error) {
		generate := func(ctx context.Context, _ table.QueryContext) ([]map[string]string, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		}
		return []*table.Plugin{probeTable("svclaunch_slow", generate)}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Socket:   server.Path(),
			Timeout:  testTimeout,
			Interval: 200 * time.Millisecond,
			Logger:   testLogger(t),
			Tables:   slowTable,
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

	querier, err := newClientQuerier(server.Path(), time.Minute, time.Second, testLogger(t))
	require.NoError(t, err)
	defer querier.Close()
	before := currentClient(querier)
	require.NotNil(t, before)

	slowCtx, slowCancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer slowCancel()
	_, err = querier.QueryRows(slowCtx, "SELECT * FROM svclaunch_slow")
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// The abandoned call still holds the old client's lock, so the querier
	// must have retired that client for the next query to connect afresh.
	assert.Nil(t, currentClient(querier))

	releaseTable()
	rows, err := querier.QueryRows(t.Context(), "SELECT unix_time FROM time")
	require.NoError(t, err)
	assert.Equal(t, []map[string]string{{"unix_time": fmt.Sprint(standInClock)}}, rows)
}

// currentClient returns the client that the querier's next call would use,
// or nil when the next call connects afresh.
func currentClient(q *clientQuerier) *sharedClient {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.client
}
