package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunchsources"
)

// runCommand runs the command line in-process and returns the exit code,
// standard output and standard error.
func runCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// tableSpec is the part of osquery-go's OsqueryTableSpec that the tests
// check, decoded from the JSON that spec prints.
type tableSpec struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Examples    []string `json:"examples"`
	Columns     []struct {
		Name        string `json:"name"`
		Type        string `json:"type"`
		Description string `json:"description"`
	} `json:"columns"`
}

func TestSpecPrintsEveryTable(t *testing.T) {
	t.Parallel()

	code, stdout, stderr := runCommand(t, "spec")

	require.Equal(t, exitOK, code, stderr)
	var specs []tableSpec
	require.NoError(t, json.Unmarshal([]byte(stdout), &specs), stdout)
	require.NotEmpty(t, specs)

	var names []string
	for _, spec := range specs {
		names = append(names, spec.Name)
		assert.NotEmpty(t, spec.Description, "table %s has no description", spec.Name)
		assert.NotEmpty(t, spec.Examples, "table %s has no example", spec.Name)
		require.NotEmpty(t, spec.Columns, "table %s has no columns", spec.Name)
		for _, column := range spec.Columns {
			assert.NotEmpty(t, column.Type, "column %s.%s has no type", spec.Name, column.Name)
			assert.NotEmpty(t, column.Description, "column %s.%s has no description", spec.Name, column.Name)
		}
	}
	// Every table the extension registers is checked above, so the list
	// must name each exactly once.
	assert.ElementsMatch(t, []string{remoteservicelaunches.Name, remoteservicelaunchsources.Name}, names)
}

func TestSpecRejectsArguments(t *testing.T) {
	t.Parallel()

	code, _, stderr := runCommand(t, "spec", "extra")

	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unexpected argument "extra"`)
}

func TestVersionPrintsLinkerVersion(t *testing.T) {
	// Not parallel: it sets the package variable that -ldflags sets.
	saved := version
	version = "v1.2.3"
	t.Cleanup(func() { version = saved })

	code, stdout, stderr := runCommand(t, "version")

	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, "svclaunch v1.2.3\n", stdout)
}

func TestVersionFallsBackToBuildInfo(t *testing.T) {
	if version != "" {
		t.Skip("the test binary was linked with -X main.version")
	}

	code, stdout, stderr := runCommand(t, "version")

	require.Equal(t, exitOK, code, stderr)
	assert.True(t, strings.HasPrefix(stdout, "svclaunch "), stdout)
	assert.NotEqual(t, "svclaunch \n", stdout)
}

func TestHelpListsCommandsAndVariables(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, stdout, stderr := runCommand(t, args...)

		require.Equal(t, exitOK, code, "%v: %s", args, stderr)
		for _, want := range []string{
			"svclaunch hunt", "svclaunch query", "svclaunch pack", "svclaunch spec", "svclaunch version",
			"-socket PATH", "-timeout SECONDS", "-interval SECONDS", "-window DURATION",
			"SVCLAUNCH_WINDOW", "SVCLAUNCH_PARENT_NAME", "SVCLAUNCH_INCLUDE_LOOPBACK",
			"SVCLAUNCH_CLOCK_TOLERANCE", "SVCLAUNCH_LOOKBACK", "SVCLAUNCH_SOURCES", "SVCLAUNCH_MAX_ROWS_PER_SOURCE",
			"remote_service_launches", "remote_service_launch_sources", "process_etw_events",
		} {
			assert.Contains(t, stdout, want, "%v", args)
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	t.Parallel()

	code, _, stderr := runCommand(t, "hnut")

	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unknown command "hnut"`)
	assert.Contains(t, stderr, "svclaunch help")
}

func TestHuntReadsBundledSample(t *testing.T) {
	t.Parallel()

	code, stdout, stderr := runCommand(t, "hunt", "--format", "json", "--quiet")

	require.Equal(t, exitOK, code, stderr)
	var rows []map[string]string
	require.NoError(t, json.Unmarshal([]byte(stdout), &rows), stdout)
	require.Len(t, rows, 1, stdout)
	assert.Equal(t, "9028", rows[0]["pid"])
	assert.Equal(t, "704", rows[0]["parent"])
}

func TestQueryRunsSQL(t *testing.T) {
	t.Parallel()

	code, stdout, stderr := runCommand(t, "query", "--format", "json", "--quiet", "SELECT pid, parent FROM remote_service_launches")

	require.Equal(t, exitOK, code, stderr)
	var rows []map[string]string
	require.NoError(t, json.Unmarshal([]byte(stdout), &rows), stdout)
	assert.Equal(t, []map[string]string{{"pid": "9028", "parent": "704"}}, rows)
}

func TestHuntRejectsUnknownFlag(t *testing.T) {
	t.Parallel()

	code, _, stderr := runCommand(t, "hunt", "--no-such-flag")

	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "no-such-flag")
}

func TestPackWritesOsqueryPack(t *testing.T) {
	t.Parallel()

	code, stdout, stderr := runCommand(t, "pack", "--format", "osquery")

	require.Equal(t, exitOK, code, stderr)
	var pack map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &pack), stdout)
	assert.Contains(t, pack, "queries")
}

func TestExtensionRequiresSocket(t *testing.T) {
	t.Parallel()

	code, stdout, stderr := runCommand(t, "--timeout", "3", "--interval", "3")

	assert.Equal(t, exitUsage, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "missing --socket PATH")
}

func TestExtensionRejectsUnknownFlag(t *testing.T) {
	t.Parallel()

	code, _, stderr := runCommand(t, "--socket", "/tmp/x.em", "--no-such-flag")

	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "no-such-flag")
}

func TestExtensionFailsWhenSocketNeverAppears(t *testing.T) {
	t.Parallel()
	socket := filepath.Join(t.TempDir(), "osquery.em")

	started := time.Now()
	code, _, stderr := runCommand(t, "--socket", socket, "--timeout", "1", "--interval", "1")
	elapsed := time.Since(started)

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "osquery socket "+socket+" did not respond to a ping within 1s")
	assert.Contains(t, stderr, "--extensions_socket="+socket)
	// The extension waits for the socket instead of failing at once.
	assert.GreaterOrEqual(t, elapsed, time.Second)
}
