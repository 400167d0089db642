package pack

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the generated pack files and the README samples instead of comparing them")

// generatedFiles maps each checked-in generated file to the format that
// produces it.
var generatedFiles = []struct {
	path   string
	format string
}{
	{"svclaunch.conf", FormatOsquery},
	{"fleet/svclaunch-queries.yml", FormatFleet},
	{"fleet/gitops-queries.yml", FormatFleetGitOps},
}

const (
	detectionName       = "remote_service_launches_windows"
	detectionLinuxName  = "remote_service_launches_linux"
	detectionDarwinName = "remote_service_launches_darwin"
	healthName          = "remote_service_launch_sources_unhealthy"
	huntName            = "remote_service_launches_sysmon_hunt"
)

func TestGeneratedFilesMatchSources(t *testing.T) {
	for _, tt := range generatedFiles {
		t.Run(tt.format, func(t *testing.T) {
			want, err := Generate(tt.format)
			require.NoError(t, err)

			if *update {
				require.NoError(t, os.WriteFile(tt.path, want, 0o644))
			}

			got, err := os.ReadFile(tt.path)
			require.NoError(t, err, "run go test ./pack -update to create it")
			require.True(t, bytes.Equal(want, got), "%s differs from what the generator writes (%s); run go test ./pack -update",
				tt.path, firstDifference(string(want), string(got)))
		})
	}
}

// osqueryPlatformWords are the platform words osquery's checkPlatform
// recognises (osquery/core/system.cpp).
var osqueryPlatformWords = []string{"darwin", "linux", "posix", "windows", "any", "all"}

var versionPattern = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

func requireOsqueryPlatform(t *testing.T, where string, value any) {
	t.Helper()
	s, ok := value.(string)
	require.True(t, ok, "%s: platform must be a string, got %T", where, value)
	require.NotEmpty(t, s, "%s: platform", where)
	for _, word := range strings.Split(s, ",") {
		require.Contains(t, osqueryPlatformWords, word, "%s: platform %q", where, s)
	}
}

func requireVersion(t *testing.T, where string, value any) {
	t.Helper()
	s, ok := value.(string)
	require.True(t, ok, "%s: version must be a string, got %T", where, value)
	require.Regexp(t, versionPattern, s, "%s: version", where)
}

func TestOsqueryPackFieldsValid(t *testing.T) {
	data, err := os.ReadFile("svclaunch.conf")
	require.NoError(t, err)

	// A generic decode reads exactly the keys osquery's parser reads, including
	// keys the Go struct might not know.
	var pack map[string]any
	require.NoError(t, json.Unmarshal(data, &pack))

	packKeys := []string{"discovery", "platform", "queries", "version"}
	require.ElementsMatch(t, packKeys, keys(pack))
	requireOsqueryPlatform(t, "pack", pack["platform"])
	requireVersion(t, "pack", pack["version"])
	require.Equal(t, []any{"SELECT 1 FROM osquery_extensions WHERE name = 'svclaunch'"}, pack["discovery"])

	queries, ok := pack["queries"].(map[string]any)
	require.True(t, ok, "queries must be an object")
	require.NotEmpty(t, queries)

	queryKeys := []string{"query", "interval", "snapshot", "removed", "platform", "version", "description", "value", "denylist"}
	for name, raw := range queries {
		for _, prefix := range []string{"query.", "cache.", "config_views."} {
			require.False(t, strings.HasPrefix(name, prefix), "query name %q starts with the reserved prefix %q", name, prefix)
		}
		for _, suffix := range []string{"epoch", "counter"} {
			require.False(t, strings.HasSuffix(name, suffix), "query name %q ends with the reserved suffix %q", name, suffix)
		}

		q, ok := raw.(map[string]any)
		require.True(t, ok, "query %s must be an object", name)
		require.ElementsMatch(t, queryKeys, keys(q), "query %s", name)

		sql, ok := q["query"].(string)
		require.True(t, ok, "query %s: query must be a string", name)
		require.NotEmpty(t, strings.TrimSpace(sql), "query %s: query", name)

		interval, ok := q["interval"].(float64)
		require.True(t, ok, "query %s: interval must be a number", name)
		require.Equal(t, float64(int(interval)), interval, "query %s: interval must be whole seconds", name)
		require.GreaterOrEqual(t, interval, 1.0, "query %s: interval", name)
		require.LessOrEqual(t, interval, 604800.0, "query %s: interval", name)

		for _, key := range []string{"snapshot", "removed", "denylist"} {
			require.IsType(t, true, q[key], "query %s: %s must be a boolean", name, key)
		}
		for _, key := range []string{"description", "value"} {
			text, ok := q[key].(string)
			require.True(t, ok, "query %s: %s must be a string", name, key)
			require.NotEmpty(t, text, "query %s: %s", name, key)
		}
		requireOsqueryPlatform(t, "query "+name, q["platform"])
		requireVersion(t, "query "+name, q["version"])
	}
}

func TestOsqueryPackLevelFiltersAdmitEveryQuery(t *testing.T) {
	queries, err := Queries()
	require.NoError(t, err)
	p, err := NewOsqueryPack(queries)
	require.NoError(t, err)

	// osquery skips the whole pack on a platform or version the pack-level
	// filters reject, so they must admit every query's platform and version.
	for name, q := range p.Queries {
		for _, platform := range strings.Split(q.Platform, ",") {
			require.Contains(t, strings.Split(p.Platform, ","), platform, "pack platform must admit query %s", name)
		}
		require.LessOrEqual(t, compareVersions(p.Version, q.Version), 0, "pack version must not exceed query %s's version", name)
	}
}

// fleetQuerySpec holds exactly the fields Fleet documents for a query spec
// (server/fleet/queries.go QuerySpec), so a strict decode fails on any other
// key.
type fleetQuerySpec struct {
	Name               string `yaml:"name"`
	Description        string `yaml:"description"`
	Query              string `yaml:"query"`
	Team               string `yaml:"team"`
	Interval           uint   `yaml:"interval"`
	ObserverCanRun     bool   `yaml:"observer_can_run"`
	Platform           string `yaml:"platform"`
	MinOsqueryVersion  string `yaml:"min_osquery_version"`
	AutomationsEnabled bool   `yaml:"automations_enabled"`
	Logging            string `yaml:"logging"`
	DiscardData        bool   `yaml:"discard_data"`
}

// fleetGitOpsQuery is a GitOps list entry: the same fields without team.
type fleetGitOpsQuery struct {
	Name               string `yaml:"name"`
	Description        string `yaml:"description"`
	Query              string `yaml:"query"`
	Interval           uint   `yaml:"interval"`
	ObserverCanRun     bool   `yaml:"observer_can_run"`
	Platform           string `yaml:"platform"`
	MinOsqueryVersion  string `yaml:"min_osquery_version"`
	AutomationsEnabled bool   `yaml:"automations_enabled"`
	Logging            string `yaml:"logging"`
	DiscardData        bool   `yaml:"discard_data"`
}

type fleetApplyDocument struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Spec       fleetQuerySpec `yaml:"spec"`
}

// fleetLoggingModes and fleetPlatforms are the values Fleet accepts.
var (
	fleetLoggingModes = []string{"snapshot", "differential", "differential_ignore_removals"}
	fleetPlatforms    = []string{"darwin", "linux", "windows", "chrome"}
)

func decodeFleetApply(t *testing.T, data []byte) []fleetApplyDocument {
	t.Helper()
	decoder := yaml.NewDecoder(bytes.NewReader(data))
	decoder.KnownFields(true)

	var docs []fleetApplyDocument
	for {
		var doc fleetApplyDocument
		err := decoder.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err)
		docs = append(docs, doc)
	}
}

func requireFleetSpec(t *testing.T, spec fleetGitOpsQuery) {
	t.Helper()
	require.NotEmpty(t, spec.Name)
	require.NotEmpty(t, spec.Description, "query %s", spec.Name)
	require.NotEmpty(t, spec.Query, "query %s", spec.Name)
	require.Contains(t, fleetLoggingModes, spec.Logging, "query %s: logging", spec.Name)
	require.Regexp(t, versionPattern, spec.MinOsqueryVersion, "query %s: min_osquery_version", spec.Name)
	require.LessOrEqual(t, spec.Interval, uint(604800), "query %s: interval", spec.Name)
	for _, platform := range strings.Split(spec.Platform, ",") {
		require.Contains(t, fleetPlatforms, platform, "query %s: platform %q", spec.Name, spec.Platform)
	}
	if spec.Interval == 0 {
		require.False(t, spec.AutomationsEnabled, "query %s: an unscheduled query has nothing to send to the log destination", spec.Name)
	}
}

func TestFleetApplyDecodesStrictly(t *testing.T) {
	data, err := os.ReadFile("fleet/svclaunch-queries.yml")
	require.NoError(t, err)

	docs := decodeFleetApply(t, data)
	queries, err := Queries()
	require.NoError(t, err)
	require.Len(t, docs, len(queries), "one document per query, including the ad hoc hunt")

	var names []string
	for _, doc := range docs {
		require.Equal(t, "v1", doc.APIVersion)
		require.Equal(t, "query", doc.Kind)
		require.Empty(t, doc.Spec.Team, "query %s: no team means a global query", doc.Spec.Name)
		s := doc.Spec
		requireFleetSpec(t, fleetGitOpsQuery{
			Name: s.Name, Description: s.Description, Query: s.Query, Interval: s.Interval,
			ObserverCanRun: s.ObserverCanRun, Platform: s.Platform, MinOsqueryVersion: s.MinOsqueryVersion,
			AutomationsEnabled: s.AutomationsEnabled, Logging: s.Logging, DiscardData: s.DiscardData,
		})
		names = append(names, s.Name)
	}
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(names))), len(names), "Fleet query names must be unique")
}

func TestFleetStrictDecodeRejectsUnknownKey(t *testing.T) {
	// The strict decoder is what makes the test above mean something: a key
	// Fleet does not document must fail.
	doc := "apiVersion: v1\nkind: query\nspec:\n  name: x\n  query: SELECT 1\n  removed: false\n"
	decoder := yaml.NewDecoder(strings.NewReader(doc))
	decoder.KnownFields(true)

	var out fleetApplyDocument
	err := decoder.Decode(&out)
	require.Error(t, err)
	require.Contains(t, err.Error(), "removed")
}

func TestFleetGitOpsDecodesStrictly(t *testing.T) {
	data, err := os.ReadFile("fleet/gitops-queries.yml")
	require.NoError(t, err)

	decoder := yaml.NewDecoder(bytes.NewReader(data))
	decoder.KnownFields(true)
	var specs []fleetGitOpsQuery
	require.NoError(t, decoder.Decode(&specs))

	queries, err := Queries()
	require.NoError(t, err)
	require.Len(t, specs, len(queries))
	for _, spec := range specs {
		requireFleetSpec(t, spec)
	}
}

func TestFleetLoggingMatchesOsqueryOptions(t *testing.T) {
	queries, err := Queries()
	require.NoError(t, err)
	p, err := NewOsqueryPack(queries)
	require.NoError(t, err)

	// Fleet turns logging into osquery's options: snapshot sets snapshot,
	// differential sets removed, differential_ignore_removals clears it.
	for _, q := range queries {
		if !q.Scheduled() {
			continue
		}
		o := p.Queries[q.Name]
		switch q.Logging {
		case LoggingSnapshot:
			require.True(t, o.Snapshot, q.Name)
		case LoggingDifferential:
			require.False(t, o.Snapshot, q.Name)
			require.True(t, o.Removed, q.Name)
		case LoggingDifferentialIgnoreRemovals:
			require.False(t, o.Snapshot, q.Name)
			require.False(t, o.Removed, q.Name)
		}
	}
}

func TestDetectionQuerySettings(t *testing.T) {
	q, err := Lookup(detectionName)
	require.NoError(t, err)

	require.Equal(t, "SELECT * FROM remote_service_launches", q.SQL)
	require.Equal(t, 60, q.Interval)
	require.Equal(t, LoggingDifferentialIgnoreRemovals, q.Logging)
	require.Equal(t, []string{"windows"}, q.Platforms)
	require.GreaterOrEqual(t, compareVersions(q.MinOsqueryVersion, "5.8.0"), 0, "process_etw_events needs osquery 5.8.0")

	p, err := NewOsqueryPack([]Query{q})
	require.NoError(t, err)
	o := p.Queries[detectionName]
	require.False(t, o.Snapshot)
	require.False(t, o.Removed)
	require.Equal(t, []string{DiscoveryQuery}, p.Discovery)
}

func TestUnixDetectionQueries(t *testing.T) {
	windows, err := Lookup(detectionName)
	require.NoError(t, err)

	tests := []struct {
		name       string
		platform   string
		minVersion string
	}{
		{detectionLinuxName, "linux", "5.9.1"},
		// macOS socket_events reports accepted connections from 5.15.0 on.
		{detectionDarwinName, "darwin", "5.15.0"},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			q, err := Lookup(tt.name)
			require.NoError(t, err)

			// The same table serves every platform; only the entry differs.
			require.Equal(t, windows.SQL, q.SQL)
			require.Equal(t, []string{tt.platform}, q.Platforms)
			require.Equal(t, windows.Interval, q.Interval)
			require.Equal(t, windows.Logging, q.Logging)
			require.GreaterOrEqual(t, compareVersions(q.MinOsqueryVersion, tt.minVersion), 0)
		})
	}
}

func TestHealthQuerySettings(t *testing.T) {
	q, err := Lookup(healthName)
	require.NoError(t, err)

	require.Equal(t, "SELECT * FROM remote_service_launch_sources WHERE status != 'ok'", q.SQL)
	require.Equal(t, 86400, q.Interval)
	require.Equal(t, LoggingSnapshot, q.Logging)

	p, err := NewOsqueryPack([]Query{q})
	require.NoError(t, err)
	require.True(t, p.Queries[healthName].Snapshot)
}

func TestHuntIsNeverScheduled(t *testing.T) {
	q, err := Lookup(huntName)
	require.NoError(t, err)
	require.Zero(t, q.Interval)
	require.False(t, q.Scheduled())

	// It ships as its own .sql file and in Fleet with interval 0, never in
	// the osquery pack.
	_, err = os.Stat(filepath.Join("queries", q.File))
	require.NoError(t, err)

	queries, err := Queries()
	require.NoError(t, err)
	p, err := NewOsqueryPack(queries)
	require.NoError(t, err)
	require.NotContains(t, p.Queries, huntName)

	spec := NewFleetQuery(q)
	require.Zero(t, spec.Interval)
	require.False(t, spec.AutomationsEnabled)
}

func TestHuntSQLShape(t *testing.T) {
	q, err := Lookup(huntName)
	require.NoError(t, err)
	sql := q.SQL

	// Both scans of windows_events carry an explicit lower bound on time.
	bound := "time >= (SELECT unix_time FROM time) - 3600"
	require.Equal(t, 2, strings.Count(sql, bound), "each windows_events scan needs %q", bound)
	require.Equal(t, 2, strings.Count(sql, "FROM windows_events"))

	// The join is on the parent's instance, not on pids.
	require.Contains(t, sql, "inbound.guid = child.parent_guid")
	require.NotRegexp(t, `(?i)\bpid\s*=`, sql)

	// The window is two explicit comparisons, never a chained one.
	require.Contains(t, sql, "delay_ms >= 0\n  AND delay_ms <= 1000")
	require.NotRegexp(t, `<[^<>=\n]*<`, strings.ReplaceAll(sql, "<=", "≤"), "a chained comparison a < b < c")
}

func TestParseQueryRejectsBadHeaders(t *testing.T) {
	valid := "-- name: x\n-- description: d\n-- value: v\n-- response: r\n-- platform: windows\n" +
		"-- interval: 60\n-- logging: snapshot\n-- min_osquery_version: 5.9.1\nSELECT 1;\n"
	_, err := ParseQuery("valid.sql", valid)
	require.NoError(t, err)

	tests := []struct {
		name    string
		text    string
		wantErr string
	}{
		{"unknown key", strings.Replace(valid, "-- value: v", "-- valeu: v", 1), `unknown header key "valeu"`},
		{"missing key", strings.Replace(valid, "-- response: r\n", "", 1), `missing header key "response"`},
		{"duplicate key", strings.Replace(valid, "-- value: v", "-- value: v\n-- value: w", 1), `key "value" appears twice`},
		{"reserved prefix", strings.Replace(valid, "-- name: x", "-- name: query.x", 1), "invalid name"},
		{"reserved suffix", strings.Replace(valid, "-- name: x", "-- name: x_counter", 1), `reserves the suffix "counter"`},
		{"posix platform", strings.Replace(valid, "platform: windows", "platform: posix", 1), `invalid platform "posix"`},
		{"interval too long", strings.Replace(valid, "interval: 60", "interval: 604801", 1), "invalid interval 604801"},
		{"logging mode", strings.Replace(valid, "logging: snapshot", "logging: removed", 1), `invalid logging "removed"`},
		{"version form", strings.Replace(valid, "5.9.1", "5.9", 1), `invalid min_osquery_version "5.9"`},
		{"stray header line", strings.Replace(valid, "-- value: v", "-- value: v\n-- stray", 1), "neither"},
		{"no SQL", strings.TrimSuffix(valid, "SELECT 1;\n"), "no SQL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQuery("bad.sql", tt.text)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestParseQueryJoinsContinuationLines(t *testing.T) {
	text := "-- name: x\n-- description: first line\n--   second line\n-- value: v\n-- response: r\n" +
		"-- platform: windows,linux\n-- interval: 0\n-- logging: snapshot\n-- min_osquery_version: 5.9.1\n" +
		"-- denylist: false\nSELECT 1\nFROM time;\n"
	q, err := ParseQuery("x.sql", text)
	require.NoError(t, err)
	require.Equal(t, "first line second line", q.Description)
	require.Equal(t, []string{"windows", "linux"}, q.Platforms)
	require.False(t, q.Denylist)
	require.Equal(t, "SELECT 1\nFROM time", q.SQL)
}

func TestRunCommandWritesEachFormat(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			want, err := Generate(format)
			require.NoError(t, err)

			var stdout, stderr bytes.Buffer
			code := RunCommand(t.Context(), []string{"--format", format}, &stdout, &stderr)
			require.Equal(t, 0, code, stderr.String())
			require.Equal(t, string(want), stdout.String())

			out := filepath.Join(t.TempDir(), "pack.out")
			stdout.Reset()
			code = RunCommand(t.Context(), []string{"--format=" + format, "--output", out}, &stdout, &stderr)
			require.Equal(t, 0, code, stderr.String())
			require.Empty(t, stdout.String())
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}

func TestRunCommandRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown format", []string{"--format", "yaml"}, 2, `unknown format "yaml"`},
		{"stray argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"--platform", "windows"}, 2, "flag provided but not defined"},
		{"missing directory", []string{"--output", filepath.Join(t.TempDir(), "missing", "pack.conf")}, 1, "creating a temporary file"},
		{"help", []string{"-h"}, 0, "usage: svclaunch pack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := RunCommand(t.Context(), tt.args, &stdout, &stderr)
			require.Equal(t, tt.wantCode, code)
			require.Contains(t, stderr.String(), tt.wantErr)
			require.Empty(t, stdout.String())
		})
	}
}

// firstDifference describes the first line where two texts differ, which
// reads better than two whole files side by side.
func firstDifference(want, got string) string {
	wantLines, gotLines := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wantLines), len(gotLines)) {
		var w, g string
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if w != g {
			return fmt.Sprintf("line %d: generator writes %q, file has %q", i+1, w, g)
		}
	}
	return "no line differs"
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
