package extension

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// runInBackground starts Run with cfg and returns its cancel function and
// the channel that receives its result. The test's cleanup cancels Run and
// waits for it.
func runInBackground(t *testing.T, cfg Config) (context.CancelFunc, <-chan error) {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	result := make(chan error, 1)
	go func() {
		err := Run(ctx, cfg)
		done <- err
		result <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, result
}

// waitForRegistration waits until the extension is registered with the
// stand-in and responds to its pings.
func waitForRegistration(t *testing.T, server *osquerytest.Server) {
	t.Helper()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := server.WaitForExtension(ctx, Name)
	require.NoError(t, err)
}

// lockedLog is a log destination that the test reads while Run writes.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
	// started is closed at the first "extension starting" line.
	started chan struct{}
	once    sync.Once
}

func newLockedLog() *lockedLog {
	return &lockedLog{started: make(chan struct{})}
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(string(p), "extension starting") {
		l.once.Do(func() { close(l.started) })
	}
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestRunWaitsForLateSocket starts the extension on a socket path that does
// not exist yet, as when osqueryd starts its extensions before it opens the
// socket, and makes the socket appear while the extension waits.
func TestRunWaitsForLateSocket(t *testing.T) {
	server := startStandIn(t)

	// The extension's own socket is its manager path plus ".<uuid>", so a
	// link to the stand-in's directory serves both paths.
	linkDir := filepath.Join(t.TempDir(), "osq")
	socket := filepath.Join(linkDir, filepath.Base(server.Path()))
	_, err := os.Stat(socket)
	require.ErrorIs(t, err, os.ErrNotExist)

	log := newLockedLog()
	runInBackground(t, Config{
		Socket:   socket,
		Timeout:  time.Minute,
		Interval: 200 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Tables:   clockTable,
	})

	// Several polls find no socket before it appears.
	<-log.started
	time.Sleep(5 * pollInterval)
	require.NoError(t, os.Symlink(filepath.Dir(server.Path()), linkDir))

	waitForRegistration(t, server)
	rows := queryStandIn(t, server, "SELECT value FROM svclaunch_probe")
	assert.Equal(t, []map[string]string{{"value": fmt.Sprint(standInClock)}}, rows)
	assert.Contains(t, log.String(), "osquery responded to a ping")
}

// TestRunFailsWhenOsqueryDiesMidQuery stops the stand-in, as a killed
// osqueryd disappears, while a table call waits for a query it sent to
// osquery. The call must end with an error and Run with one too, so that
// the process exits non-zero and osqueryd's watcher starts it again.
func TestRunFailsWhenOsqueryDiesMidQuery(t *testing.T) {
	server := startStandIn(t)

	innerStarted := make(chan struct{})
	innerDone := make(chan struct{})
	outerResult := make(chan error, 1)
	tables := func(q osq.Querier, _ *slog.Logger) ([]*table.Plugin, error) {
		// The outer table queries osquery for the inner one, which
		// blocks until its call ends, so the outer query is in flight
		// when osquery goes away.
		outer := func(ctx context.Context, _ table.QueryContext) ([]map[string]string, error) {
			_, err := q.QueryRows(ctx, "SELECT value FROM svclaunch_inner")
			outerResult <- err
			return nil, err
		}
		inner := func(ctx context.Context, _ table.QueryContext) ([]map[string]string, error) {
			defer close(innerDone)
			close(innerStarted)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return []*table.Plugin{probeTable("svclaunch_outer", outer), probeTable("svclaunch_inner", inner)}, nil
	}
	_, result := runInBackground(t, Config{
		Socket:          server.Path(),
		Timeout:         testTimeout,
		Interval:        200 * time.Millisecond,
		Logger:          testLogger(t),
		GenerateTimeout: 5 * time.Second,
		Tables:          tables,
	})
	waitForRegistration(t, server)

	clientResult := make(chan error, 1)
	go func() {
		client, err := osquery.NewClient(server.Path(), time.Minute)
		if err != nil {
			clientResult <- err
			return
		}
		defer client.Close()
		_, err = client.QueryRows("SELECT value FROM svclaunch_outer")
		clientResult <- err
	}()

	<-innerStarted
	server.Stop()

	err := <-outerResult
	require.Error(t, err, "the table's query must fail when osquery goes away")
	assert.Contains(t, err.Error(), "querying osquery")

	err = <-result
	require.Error(t, err, "Run must fail so that the process exits non-zero")
	assert.Contains(t, err.Error(), "lost osquery at "+server.Path())

	require.Error(t, <-clientResult, "the query's client lost its osquery too")
	<-innerDone
}

// loadedStandIn starts the stand-in over an engine that holds a recording,
// with the engine's clock at the recording's newest event.
func loadedStandIn(t *testing.T, recording string) *osquerytest.Server {
	t.Helper()

	batch, err := telemetry.LoadFile(t.Context(), testrecordings.Path(t, recording), telemetry.Options{})
	require.NoError(t, err)

	eng, err := engine.Open(t.Context(), engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, eng.Close()) })
	for name, rows := range batch.Rows {
		require.NoError(t, eng.Insert(t.Context(), name, rows))
	}
	eng.SetClock(batch.Clock)

	server, err := osquerytest.Start(t.Context(), eng, osquerytest.Options{
		Logger:   testLogger(t),
		Timeout:  testTimeout,
		Interval: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, server.Close()) })
	return server
}

// stallingQuerier passes queries on, except those containing stall, which
// block until their deadline as a hung osquery table would.
type stallingQuerier struct {
	next  osq.Querier
	stall string
}

func (q stallingQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	if strings.Contains(sql, q.stall) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return q.next.QueryRows(ctx, sql)
}

// missingSource is a source whose table osquery does not have, so osquery
// returns status 1 for its query.
type missingSource struct{}

func (missingSource) Name() string  { return "missing" }
func (missingSource) Table() string { return "no_such_table" }
func (missingSource) Query(sources.Bounds) (string, error) {
	return "SELECT * FROM no_such_table WHERE time >= 0", nil
}
func (missingSource) Decode([]map[string]string) *sources.Events { return sources.NewEvents() }

// TestSlowSourceFailsAlone reads the Empire PsExec recording through the
// stand-in while the Sysmon query stalls past its deadline and a third
// source's table is missing, so that osquery returns status 1 for it. The
// Security source must still find the launch.
func TestSlowSourceFailsAlone(t *testing.T) {
	server := loadedStandIn(t, testrecordings.EmpirePsExec)

	log := newLockedLog()
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tables := func(q osq.Querier, logger *slog.Logger) ([]*table.Plugin, error) {
		tbl := remoteservicelaunches.New(remoteservicelaunches.Config{
			Querier: stallingQuerier{next: q, stall: strings.ToLower(sources.SysmonChannel)},
			Sources: []sources.Source{sources.NewSysmon(), sources.NewSecurity(), missingSource{}},
			// The stalled source costs the whole timeout, and the Security
			// query must still fit in it on a loaded 2-core CI machine
			// running -race, where one second was seen to be too short.
			SourceTimeout: 5 * time.Second,
			Logger:        logger,
		})
		return []*table.Plugin{tbl.Plugin()}, nil
	}
	runInBackground(t, Config{
		Socket:   server.Path(),
		Timeout:  testTimeout,
		Interval: 200 * time.Millisecond,
		Logger:   logger,
		Tables:   tables,
	})
	waitForRegistration(t, server)

	rows := queryStandIn(t, server, "SELECT pid, process_sources, connection_sources FROM remote_service_launches")
	assert.Equal(t, []map[string]string{{"pid": "9028", "process_sources": "security", "connection_sources": "security"}}, rows)

	logged := log.String()
	assert.Contains(t, logged, `msg="reading source failed"`)
	assert.Contains(t, logged, "source=sysmon")
	assert.Contains(t, logged, "context deadline exceeded")
	assert.Contains(t, logged, "source=missing")
	assert.Contains(t, logged, "no such table: no_such_table")
}

// TestLargeRowThroughStandIn returns a row with a 1 MB value that starts
// with terminal escapes through osquery's Thrift protocol, and requires it
// to arrive whole.
func TestLargeRowThroughStandIn(t *testing.T) {
	server := startStandIn(t)

	cmdline := "cmd.exe \x1b[2J\r\u202e" + strings.Repeat("A", 1<<20)
	tables := func(osq.Querier, *slog.Logger) ([]*table.Plugin, error) {
		generate := func(context.Context, table.QueryContext) ([]map[string]string, error) {
			return []map[string]string{{"value": cmdline}}, nil
		}
		return []*table.Plugin{probeTable("svclaunch_large", generate)}, nil
	}
	runInBackground(t, Config{
		Socket:   server.Path(),
		Timeout:  testTimeout,
		Interval: 200 * time.Millisecond,
		Logger:   testLogger(t),
		Tables:   tables,
	})
	waitForRegistration(t, server)

	rows := queryStandIn(t, server, "SELECT value FROM svclaunch_large")
	require.Len(t, rows, 1)
	assert.Equal(t, len(cmdline), len(rows[0]["value"]))
	assert.True(t, rows[0]["value"] == cmdline, "the value changed on its way")
}

// TestConcurrentGeneratesThroughStandIn sends many queries at once, each
// on its own osquery client, to the real table through the stand-in and
// the extension's guard and querier. Every query must return the same rows
// it returns alone, and under -race no access may race.
func TestConcurrentGeneratesThroughStandIn(t *testing.T) {
	server := loadedStandIn(t, testrecordings.EmpirePsExec)

	tables := func(q osq.Querier, logger *slog.Logger) ([]*table.Plugin, error) {
		tbl := remoteservicelaunches.New(remoteservicelaunches.Config{
			Querier: q,
			Sources: []sources.Source{sources.NewSysmon(), sources.NewSecurity()},
			Logger:  logger,
		})
		return []*table.Plugin{tbl.Plugin()}, nil
	}
	runInBackground(t, Config{
		Socket:   server.Path(),
		Timeout:  testTimeout,
		Interval: 200 * time.Millisecond,
		Logger:   testLogger(t),
		Tables:   tables,
	})
	waitForRegistration(t, server)

	queries := map[string]int{
		"SELECT pid FROM remote_service_launches":                          1,
		"SELECT pid FROM remote_service_launches WHERE time >= 1600618616": 1,
		"SELECT pid FROM remote_service_launches WHERE time = 1600618616":  1,
		"SELECT pid FROM remote_service_launches WHERE time > 1600618616":  0,
	}

	const clients = 12
	var wg sync.WaitGroup
	failures := make(chan error, clients*len(queries))
	for i := range clients {
		wg.Go(func() {
			client, err := osquery.NewClient(server.Path(), time.Minute)
			if err != nil {
				failures <- err
				return
			}
			defer client.Close()

			for sql, want := range queries {
				rows, err := client.QueryRows(sql)
				switch {
				case err != nil:
					failures <- fmt.Errorf("client %d: %s: %w", i, sql, err)
				case len(rows) != want:
					failures <- fmt.Errorf("client %d: %s: %d rows, want %d: %v", i, sql, len(rows), want, rows)
				case want == 1 && rows[0]["pid"] != "9028":
					failures <- fmt.Errorf("client %d: %s: pid %s, want 9028", i, sql, rows[0]["pid"])
				}
			}
		})
	}
	wg.Wait()
	close(failures)

	for err := range failures {
		t.Error(err)
	}
}
