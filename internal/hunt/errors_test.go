package hunt

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, content, 0o600))
	return path
}

func TestInputErrors(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	unreadable := writeTemp(t, "unreadable.json", sample)
	require.NoError(t, os.Chmod(unreadable, 0))
	csvFile := writeTemp(t, "events.csv", []byte("time,host,cmdline\n1600618616,WORKSTATION6,cmd.exe\n"))
	unknownJSON := writeTemp(t, "other.json", []byte(`{"ts":"2020-09-20T16:16:56Z","msg":"hello"}`+"\n"))
	truncated := writeTemp(t, "truncated.json", sample[:len(sample)-200])
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(sample)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	truncatedGzip := writeTemp(t, "truncated.json.gz", gz.Bytes()[:gz.Len()/2])
	notEvtx := writeTemp(t, "events.json", sample)

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing file", []string{missing}, ExitRuntime,
			[]string{"svclaunch hunt: cannot read " + missing + ": file not found: check the path"}},
		{"directory", []string{dir}, ExitRuntime,
			[]string{"svclaunch hunt: cannot read " + dir + ": it is a directory: give the files in it"}},
		{"csv content", []string{csvFile}, ExitRuntime,
			[]string{"unknown format: " + csvFile + " line 1 is not JSON (expected Windows event JSON lines, an osquery results log, or .evtx)"}},
		{"unknown json layout", []string{unknownJSON}, ExitRuntime,
			[]string{unknownJSON + " line 1", "unknown format", "[ts msg]", "expected JSON lines in NXLog"}},
		{"truncated last line", []string{truncated}, ExitRuntime,
			[]string{truncated + " line 42", "expected a complete JSON object followed by a newline", "truncated"}},
		{"truncated gzip", []string{truncatedGzip}, ExitRuntime,
			[]string{truncatedGzip}},
		{"forced evtx on json", []string{"--input-format", "evtx", notEvtx}, ExitRuntime,
			[]string{notEvtx, `format "evtx" requested but the content does not start with the .evtx magic`}},
		{"unknown flag", []string{"--sinse", "1"}, ExitUsage,
			[]string{"flag provided but not defined", "Usage: svclaunch hunt [flags] [FILE...]", "Run 'svclaunch hunt --help' for the flags."}},
		{"unknown output format", []string{"--format", "xml"}, ExitUsage,
			[]string{`unknown output format "xml": use one of table, json, ndjson, csv`}},
		{"unknown input format", []string{"--input-format", "syslog"}, ExitUsage,
			[]string{`unknown input format "syslog"`}},
		{"invalid time", []string{"--until", "tomorrow"}, ExitUsage,
			[]string{`invalid time "tomorrow": use RFC 3339`}},
	}
	if os.Geteuid() != 0 {
		// root reads files whatever their mode.
		tests = append(tests, struct {
			name string
			args []string
			code int
			want []string
		}{"unreadable file", []string{unreadable}, ExitRuntime,
			[]string{"svclaunch hunt: cannot read " + unreadable + ": permission denied: check the file's permissions"}})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := hunt(t, tt.args...)
			require.Equal(t, tt.code, got.code, got.stderr)
			require.Empty(t, got.stdout)
			for _, want := range tt.want {
				require.Contains(t, got.stderr, want)
			}
			require.NotContains(t, got.stderr, "detection", "no summary after an error")
		})
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no sql", []string{"--load", "x.json"}, ExitUsage, "missing SQL statement"},
		{"sql syntax error", []string{"SELEC * FROM windows_events"}, ExitRuntime, `svclaunch query: running query: near "SELEC": syntax error`},
		{"unknown table", []string{"SELECT * FROM no_such_table"}, ExitRuntime, "no such table: no_such_table"},
		{"missing load file", []string{"--load", "/nonexistent/x.json", "SELECT 1"}, ExitRuntime, "cannot read /nonexistent/x.json: file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := query(t, tt.args...)
			require.Equal(t, tt.code, got.code, got.stderr)
			require.Contains(t, got.stderr, tt.want)
		})
	}
}

// A malformed event inside a good file is skipped and counted; the rest of
// the file still loads and the detection is still found.
func TestMalformedLineIsSkipped(t *testing.T) {
	t.Parallel()

	lines := bytes.SplitAfter(sample, []byte("\n"))
	var content []byte
	for i, line := range lines {
		content = append(content, line...)
		if i == 10 {
			content = append(content, []byte("{\"EventID\": 1, \"Hostname\": \n")...)
			content = append(content, []byte("[1, 2, 3]\n")...)
		}
	}
	path := writeTemp(t, "damaged.json", content)

	got := hunt(t, "--format", "json", path)
	require.Equal(t, ExitOK, got.code, got.stderr)
	require.Len(t, decodeJSONRows(t, got.stdout), 1)
	require.Contains(t, got.stderr, "skipped 4 events (line is not a JSON object: 1 ["+path+" line 13], "+
		"local time without known UTC offset: 2 ["+path+" lines 32, 33], malformed JSON: 1 ["+path+" line 12])")
}

func TestHelp(t *testing.T) {
	t.Parallel()

	for _, run := range []func(*testing.T, ...string) outcome{hunt, query} {
		got := run(t, "--help")
		require.Equal(t, ExitOK, got.code)
		require.Empty(t, got.stderr)
		for _, want := range []string{"Usage: svclaunch ", "--format FORMAT", "--utc-offset OFFSET", "--window DURATION",
			"--include-loopback\n", "--parent-name NAME", "--clock-tolerance DURATION", "--quiet\n", "Exit status: 0"} {
			require.Contains(t, got.stdout, want)
		}
	}

	got := hunt(t, "-h")
	require.Contains(t, got.stdout, "--since TIME")
	require.True(t, strings.Contains(got.stdout, "Without FILE, hunt reads a bundled sample"))
	require.Contains(t, query(t, "-h").stdout, "--load FILE")

	// The query help lists the tables a statement can read: the extension's
	// and those that recorded telemetry loads into.
	queryHelp := query(t, "-h").stdout
	for _, table := range []string{"remote_service_launches", "remote_service_launch_sources", "windows_events",
		"process_etw_events", "process_events", "socket_events", "processes", "time"} {
		require.Contains(t, queryHelp, "\n  "+table, "query help must list table %s", table)
	}
}

func TestEmptyInputs(t *testing.T) {
	t.Parallel()

	empty := writeTemp(t, "empty.json", nil)
	blank := writeTemp(t, "blank.json", []byte("\r\n\n"))
	events := writeTemp(t, "events.json", sample)

	got := hunt(t, "--format", "json", empty)
	require.Equal(t, ExitRuntime, got.code, got.stderr)
	require.Equal(t, "svclaunch hunt: no events in "+empty+": check that the file is the export you meant\n", got.stderr)

	got = hunt(t, "--format", "json", empty, blank)
	require.Equal(t, ExitRuntime, got.code, got.stderr)
	require.Contains(t, got.stderr, "no input yielded an event: no events in "+empty+"; no events in "+blank)

	got = query(t, "--format", "json", "--quiet", empty, events, "SELECT count(*) AS n FROM windows_events")
	require.Equal(t, ExitOK, got.code, got.stderr)
	require.Equal(t, "svclaunch query: warning: no events in "+empty+"\n", got.stderr)
}

func TestAllEventsSkipped(t *testing.T) {
	t.Parallel()

	broken := writeTemp(t, "broken.json", []byte(`{"EventTime":"2020-09-20 12:16:56","Hostname":"H","SourceName":"P","Channel":"Security"}
{"EventTime":"yesterday","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624}
`))
	got := hunt(t, "--format", "json", broken)
	require.Equal(t, ExitRuntime, got.code, got.stderr)
	require.Equal(t, "svclaunch hunt: skipped 2 events (missing or invalid event id: 1 ["+broken+" line 1], missing or invalid event time: 1 ["+broken+" line 2])\n"+
		"svclaunch hunt: no events loaded from "+broken+": all 2 events were skipped (see \"skipped\" for the reasons): "+
		"check that the file is the export you meant\n", got.stderr)

	oneEvent := writeTemp(t, "one.json", []byte(`{"EventTime":"yesterday","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624}`+"\n"))
	got = hunt(t, "--format", "json", oneEvent)
	require.Equal(t, ExitRuntime, got.code, got.stderr)
	require.Contains(t, got.stderr, "its only event was skipped")
}
