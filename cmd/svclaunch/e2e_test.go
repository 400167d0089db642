package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osquery/osquery-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osquerytest"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// standInInterval is the stand-in's --extensions_interval, which it passes
// to the extension as --interval.
const standInInterval = time.Second

// standInTimeout is the stand-in's --extensions_timeout, which it passes to
// the extension as --timeout. The stand-in's registration writes to its
// SQLite engine, which took 3 s on a loaded test machine, so osqueryd's
// default of 3 s would make the extension fail at random.
const standInTimeout = 10 * time.Second

// buildExtension builds this command into a temporary directory under the
// name osqueryd requires on Linux and macOS, and returns its path.
func buildExtension(t *testing.T) string {
	t.Helper()

	// go test puts its own $GOROOT/bin first in the test's PATH.
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "finding the go command")
	binary := filepath.Join(t.TempDir(), "svclaunch.ext")
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", binary, ".")
	output, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", output)
	return binary
}

// lockedBuffer collects the extension's output for the failure message.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startRecordingStandIn loads a recording into an engine, sets the engine's
// clock to the recording's newest event and starts the osquery stand-in on
// it. The extension's output is logged when the test fails.
func startRecordingStandIn(t *testing.T, recording string) *osquerytest.Server {
	t.Helper()
	ctx := t.Context()

	eng, err := engine.Open(ctx, engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, eng.Close()) })

	batch, err := telemetry.LoadFile(ctx, testrecordings.Path(t, recording), telemetry.Options{})
	require.NoError(t, err)
	tables := make([]string, 0, len(batch.Rows))
	for name := range batch.Rows {
		tables = append(tables, name)
	}
	slices.Sort(tables)
	for _, name := range tables {
		require.NoError(t, eng.Insert(ctx, name, batch.Rows[name]), name)
	}
	eng.SetClock(batch.Clock)

	var extensionOutput lockedBuffer
	server, err := osquerytest.Start(ctx, eng, osquerytest.Options{
		Interval:        standInInterval,
		Timeout:         standInTimeout,
		ExtensionOutput: &extensionOutput,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, server.Close())
		if t.Failed() {
			t.Logf("extension output:\n%s", extensionOutput.String())
		}
	})
	return server
}

// extensionProcess is a launched extension and the result of waiting for
// it, which is set before done is closed.
type extensionProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// waitExit waits at most limit for the process to exit and returns its exit
// error (nil for status 0). It fails the test when the process still runs.
func (p *extensionProcess) waitExit(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		t.Fatalf("extension still runs after %s", limit)
		return nil
	}
}

// launchExtension starts the built binary as osqueryd does and waits until
// it has registered and responds to pings. The test's cleanup kills the
// process if it still runs and waits for it.
func launchExtension(t *testing.T, binary string, server *osquerytest.Server) *extensionProcess {
	t.Helper()

	// The recordings are Windows event logs, so the extension must read the
	// Windows sources whatever the platform the test runs on. osqueryd's
	// children inherit its environment, and so does the stand-in's.
	t.Setenv(envName("sources"), sourcesWindows)

	cmd, err := osquerytest.LaunchExtension(t.Context(), binary, server, true)
	require.NoError(t, err)
	process := &extensionProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		process.err = cmd.Wait()
		close(process.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails harmlessly when the process has exited
		<-process.done
	})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = server.WaitForExtension(ctx, extension.Name)
	require.NoError(t, err)
	return process
}

func queryStandIn(t *testing.T, server *osquerytest.Server, sql string) []map[string]string {
	t.Helper()
	client, err := osquery.NewClient(server.Path(), 30*time.Second)
	require.NoError(t, err)
	defer client.Close()
	rows, err := client.QueryRows(sql)
	require.NoError(t, err, sql)
	return rows
}

func TestExtensionEndToEndEmpirePsExec(t *testing.T) {
	binary := buildExtension(t)
	server := startRecordingStandIn(t, testrecordings.EmpirePsExec)
	process := launchExtension(t, binary, server)

	rows := queryStandIn(t, server, "SELECT * FROM remote_service_launches")

	require.Len(t, rows, 1, "%v", rows)
	row := rows[0]
	assert.Equal(t, "9028", row["pid"])
	assert.Equal(t, "704", row["parent"])
	assert.Equal(t, "172.18.39.5", row["remote_address"])
	assert.Equal(t, "56608", row["remote_port"])
	assert.Equal(t, "49726", row["local_port"])
	assert.Equal(t, "578", row["delay_ms"])

	// osqueryd passes the time constraint to the extension, which must not
	// return the launch when the query starts one second after it.
	childTime, err := strconv.ParseInt(row["time"], 10, 64)
	require.NoError(t, err, row["time"])
	later := queryStandIn(t, server, "SELECT * FROM remote_service_launches WHERE time >= "+strconv.FormatInt(childTime+1, 10))
	assert.Empty(t, later)

	// A stopped osqueryd must make the extension exit non-zero, so that a
	// restarted osqueryd's watcher starts it again.
	server.Stop()
	err = process.waitExit(t, 20*standInInterval)
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "extension exited with %v, want exit status 1", err)
	assert.Equal(t, exitFailure, exitErr.ExitCode())
}

func TestExtensionEndToEndFindLocalAdmin(t *testing.T) {
	binary := buildExtension(t)
	server := startRecordingStandIn(t, testrecordings.EmpireFindLocalAdmin)
	launchExtension(t, binary, server)

	rows := queryStandIn(t, server, "SELECT * FROM remote_service_launches")

	assert.Empty(t, rows)
}

func TestExtensionEndToEndSigterm(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no SIGTERM to send to a process")
	}
	binary := buildExtension(t)
	server := startRecordingStandIn(t, testrecordings.EmpireFindLocalAdmin)
	process := launchExtension(t, binary, server)

	require.NoError(t, process.cmd.Process.Signal(syscall.SIGTERM))

	assert.NoError(t, process.waitExit(t, 20*standInInterval), "want exit status 0 after SIGTERM")
	// The extension deregisters on the way out, so the table is gone at
	// once rather than after two failed pings.
	registered := queryStandIn(t, server, "SELECT name FROM osquery_extensions WHERE name = 'svclaunch'")
	assert.Empty(t, registered)
}
