package hunt

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/telemetry/resultslog"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// outcome is what one run of a command printed and returned.
type outcome struct {
	stdout, stderr string
	code           int
}

func hunt(t *testing.T, args ...string) outcome {
	t.Helper()
	return huntStdin(t, nil, args...)
}

func huntStdin(t *testing.T, stdin []byte, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := RunHunt(t.Context(), args, bytes.NewReader(stdin), &stdout, &stderr)
	return outcome{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func query(t *testing.T, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := RunQuery(t.Context(), args, bytes.NewReader(nil), &stdout, &stderr)
	return outcome{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// decodeJSONRows decodes the output of --format json.
func decodeJSONRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	var rows []map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	return rows
}

// decodeNDJSONRows decodes the output of --format ndjson.
func decodeNDJSONRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	rows := []map[string]string{}
	scanner := bufio.NewScanner(strings.NewReader(out))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var row map[string]string
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &row), scanner.Text())
		rows = append(rows, row)
	}
	require.NoError(t, scanner.Err())
	return rows
}

// empireDetection is the one strict detection in the Empire PsExec
// recording: services.exe (pid 704) on WORKSTATION6 accepts 172.18.39.5:56608
// on port 49726 at 16:16:56.019 UTC and starts cmd.exe (pid 9028) at
// 16:16:56.597 UTC.
var empireDetection = map[string]string{
	"time":                "1600618616",
	"datetime":            "2020-09-20T16:16:56.597Z",
	"host":                "WORKSTATION6.theshire.local",
	"pid":                 "9028",
	"path":                `C:\Windows\System32\cmd.exe`,
	"parent":              "704",
	"connection_time":     "1600618616",
	"connection_datetime": "2020-09-20T16:16:56.019Z",
	"protocol":            "tcp",
	"local_address":       "172.18.39.6",
	"local_port":          "49726",
	"remote_address":      "172.18.39.5",
	"remote_port":         "56608",
	"delay_ms":            "578",
	"time_precision":      "ms",
	"connection_count":    "1",
}

// requireEmpireDetection checks the fields of the Empire PsExec detection.
func requireEmpireDetection(t *testing.T, row map[string]string) {
	t.Helper()
	for column, want := range empireDetection {
		require.Equal(t, want, row[column], "column %s", column)
	}
	cmdline, _, _ := strings.Cut(row["cmdline"], "-enc")
	require.True(t, strings.EqualFold(cmdline, `C:\Windows\System32\cmd.exe /C start /b C:\Windows\System32\WindowsPowershell\v1.0\powershell -noP -sta -w 1 `), cmdline)
	require.True(t, strings.EqualFold(row["parent_path"], `C:\Windows\System32\services.exe`), row["parent_path"])
}

// writeResultsLog loads a recording and writes its rows as an osquery
// results log, as osqueryd would log them from a scheduled query.
func writeResultsLog(t *testing.T, recording string) string {
	t.Helper()

	batch, err := telemetry.LoadFile(t.Context(), recording, telemetry.Options{})
	require.NoError(t, err)

	var buf bytes.Buffer
	require.NoError(t, resultslog.Write(&buf, batch, resultslog.Options{}))
	path := filepath.Join(t.TempDir(), "osqueryd.results.log")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path
}

// recordings lists every recording with its strict detections (CATALOG.md):
// one in the Empire PsExec recording and none in the others.
var recordings = []struct {
	name       string
	path       string
	detections int
}{
	{"empire psexec", testrecordings.EmpirePsExec, 1},
	{"empire find localadmin", testrecordings.EmpireFindLocalAdmin, 0},
	{"empire run keys reboot", testrecordings.EmpireRunKeysReboot, 0},
	{"meterpreter psexec evtx", testrecordings.MeterpreterPsExecEVTX, 0},
	{"meterpreter psexec jsonl", testrecordings.MeterpreterPsExecJSONL, 0},
	{"unquoted service evtx", testrecordings.UnquotedServiceEVTX, 0},
	{"unquoted service jsonl", testrecordings.UnquotedServiceJSONL, 0},
	{"benign sysmon evtx", testrecordings.BenignSysmonEVTX, 0},
	{"benign sysmon jsonl", testrecordings.BenignSysmonJSONL, 0},
}

func TestHuntRecordings(t *testing.T) {
	t.Parallel()

	for _, tt := range recordings {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := testrecordings.Path(t, tt.path)

			got := hunt(t, "--format", "json", path)
			require.Equal(t, ExitOK, got.code, got.stderr)
			rows := decodeJSONRows(t, got.stdout)
			require.Len(t, rows, tt.detections, got.stdout)
			if tt.detections == 1 {
				requireEmpireDetection(t, rows[0])
			}
			require.Contains(t, got.stderr, plural(tt.detections, "detection")+"\n")
			require.NotContains(t, got.stderr, "\r", "no progress bar when standard error is not a terminal")

			viaQuery := query(t, "--format", "json", "--load", path, "SELECT * FROM remote_service_launches")
			require.Equal(t, ExitOK, viaQuery.code, viaQuery.stderr)
			require.Equal(t, rows, decodeJSONRows(t, viaQuery.stdout))

			// The same recording replayed as osqueryd's results log.
			resultsLog := writeResultsLog(t, path)
			viaLog := hunt(t, "--format", "json", resultsLog)
			require.Equal(t, ExitOK, viaLog.code, viaLog.stderr)
			require.Equal(t, rows, decodeJSONRows(t, viaLog.stdout))
			require.Contains(t, viaLog.stderr, "1 file (osquery-results)")
		})
	}
}

func TestHuntEvtxAndJSONLinesAgree(t *testing.T) {
	t.Parallel()

	pairs := []struct {
		name        string
		evtx, jsonl string
	}{
		{"meterpreter psexec", testrecordings.MeterpreterPsExecEVTX, testrecordings.MeterpreterPsExecJSONL},
		{"unquoted service", testrecordings.UnquotedServiceEVTX, testrecordings.UnquotedServiceJSONL},
		{"benign sysmon", testrecordings.BenignSysmonEVTX, testrecordings.BenignSysmonJSONL},
	}
	for _, tt := range pairs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			evtxPath := testrecordings.Path(t, tt.evtx)
			jsonlPath := testrecordings.Path(t, tt.jsonl)

			fromEvtx := hunt(t, "--format", "json", "--include-loopback", "--window", "5s", evtxPath)
			fromJSONL := hunt(t, "--format", "json", "--include-loopback", "--window", "5s", jsonlPath)
			require.Equal(t, ExitOK, fromEvtx.code, fromEvtx.stderr)
			require.Equal(t, ExitOK, fromJSONL.code, fromJSONL.stderr)
			require.Equal(t, decodeJSONRows(t, fromEvtx.stdout), decodeJSONRows(t, fromJSONL.stdout))

			// The events the detection reads, compared at whole seconds
			// because python-evtx keeps microseconds of the 100 ns times.
			const events = "SELECT eventid, computer_name, substr(datetime, 1, 19) AS second, data FROM windows_events " +
				"WHERE eventid IN (1, 3, 4688, 5156) ORDER BY second, eventid, data"
			eventsEvtx := query(t, "--format", "json", "--load", evtxPath, events)
			eventsJSONL := query(t, "--format", "json", "--load", jsonlPath, events)
			require.Equal(t, ExitOK, eventsEvtx.code, eventsEvtx.stderr)
			require.Equal(t, ExitOK, eventsJSONL.code, eventsJSONL.stderr)
			rowsEvtx := decodeJSONRows(t, eventsEvtx.stdout)
			require.NotEmpty(t, rowsEvtx)
			require.Equal(t, rowsEvtx, decodeJSONRows(t, eventsJSONL.stdout))
		})
	}
}

func TestBundledSample(t *testing.T) {
	t.Parallel()

	got := hunt(t)
	require.Equal(t, ExitOK, got.code, got.stderr)
	rows := decodeNDJSONRows(t, got.stdout)
	require.Len(t, rows, 1)
	requireEmpireDetection(t, rows[0])

	require.Contains(t, got.stderr, "no file given: reading the bundled sample empire_psexec_excerpt.json")
	require.Contains(t, got.stderr, "WORKSTATION6.theshire.local -04:00 learned from")
	require.True(t, strings.HasSuffix(got.stderr, "; 1 detection\n"), got.stderr)
}

func TestBundledSampleQuiet(t *testing.T) {
	t.Parallel()

	got := hunt(t, "--quiet")
	require.Equal(t, ExitOK, got.code)
	require.Len(t, decodeNDJSONRows(t, got.stdout), 1)
	require.Contains(t, got.stderr, "bundled sample")
	require.NotContains(t, got.stderr, "detection")
}

func TestBundledSampleColumns(t *testing.T) {
	t.Parallel()

	got := hunt(t, "--format", "csv")
	require.Equal(t, ExitOK, got.code, got.stderr)
	header, _, _ := strings.Cut(got.stdout, "\r\n")
	require.Equal(t, detectionHeader, header)
}

// detectionHeader is the CSV header of remote_service_launches: its columns
// in declared order.
const detectionHeader = "time,datetime,host,pid,path,cmdline,username,parent,parent_path,connection_time," +
	"connection_datetime,protocol,local_address,local_port,remote_address,remote_port,delay_ms," +
	"time_precision,connection_count,process_sources,connection_sources"

// query prints columns in the order of the statement's result, not sorted
// by name.
func TestQueryColumnOrder(t *testing.T) {
	t.Parallel()

	const statement = "SELECT 'x' AS zeta, 'y' AS alpha, 'z' AS mu"
	tests := []struct {
		format string
		want   string
	}{
		{"csv", "zeta,alpha,mu\r\nx,y,z\r\n"},
		{"json", "[\n  {\"zeta\":\"x\",\"alpha\":\"y\",\"mu\":\"z\"}\n]\n"},
		{"ndjson", "{\"zeta\":\"x\",\"alpha\":\"y\",\"mu\":\"z\"}\n"},
		{"table", "+------+-------+----+\n| zeta | alpha | mu |\n+------+-------+----+\n| x    | y     | z  |\n+------+-------+----+\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			got := query(t, "--quiet", "--format", tt.format, statement)
			require.Equal(t, ExitOK, got.code, got.stderr)
			require.Equal(t, tt.want, got.stdout)
		})
	}

	star := query(t, "--quiet", "--format", "csv", "SELECT * FROM remote_service_launches")
	require.Equal(t, ExitOK, star.code, star.stderr)
	header, _, _ := strings.Cut(star.stdout, "\r\n")
	require.Equal(t, detectionHeader, header, "SELECT * gives the table's declared order")

	none := query(t, "--quiet", "--format", "csv", "SELECT pid, host FROM remote_service_launches WHERE 0")
	require.Equal(t, ExitOK, none.code, none.stderr)
	require.Equal(t, "pid,host\r\n", none.stdout, "an empty result still has its header")
}

func TestHuntTimeBounds(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"since after the child", []string{"--since", "2020-09-20T16:16:57Z"}, 0},
		{"since long after", []string{"--since", "2021-01-01T00:00:00Z"}, 0},
		{"since in the child's second", []string{"--since", "2020-09-20T16:16:56.900Z"}, 1},
		{"since before", []string{"--since", "1600618000"}, 1},
		{"until before the child", []string{"--until", "2020-09-20T12:16:55-04:00"}, 0},
		{"until at the child", []string{"--until", "1600618616"}, 1},
		{"since and until around", []string{"--since", "1600618616", "--until", "1600618616"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := hunt(t, append([]string{"--format", "json"}, tt.args...)...)
			require.Equal(t, ExitOK, got.code, got.stderr)
			require.Len(t, decodeJSONRows(t, got.stdout), tt.want)
		})
	}
}

func TestHuntReadsStandardInput(t *testing.T) {
	t.Parallel()

	got := huntStdin(t, sample, "--format", "json", "-")
	require.Equal(t, ExitOK, got.code, got.stderr)
	rows := decodeJSONRows(t, got.stdout)
	require.Len(t, rows, 1)
	requireEmpireDetection(t, rows[0])
	require.NotContains(t, got.stderr, "bundled sample")
	require.Contains(t, got.stderr, "svclaunch hunt: 1 file (nxlog)")
}

func TestHuntReadsGzip(t *testing.T) {
	t.Parallel()

	var compressed bytes.Buffer
	zw := gzip.NewWriter(&compressed)
	_, err := zw.Write(sample)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	path := filepath.Join(t.TempDir(), "excerpt.json.gz")
	require.NoError(t, os.WriteFile(path, compressed.Bytes(), 0o600))

	got := hunt(t, "--format", "json", path)
	require.Equal(t, ExitOK, got.code, got.stderr)
	require.Len(t, decodeJSONRows(t, got.stdout), 1)
}

func TestHuntDefaultUTCOffset(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.EmpirePsExec)
	got := hunt(t, "--format", "json", "--utc-offset", "-05:00", path)
	require.Equal(t, ExitOK, got.code, got.stderr)

	// The learned -04:00 wins, so Sysmon and Security agree on one launch.
	rows := decodeJSONRows(t, got.stdout)
	require.Len(t, rows, 1)
	require.Equal(t, "security,sysmon", rows[0]["process_sources"])
	require.Contains(t, got.stderr, "MORDORDC.theshire.local -05:00 from --utc-offset (not learned)")
	require.Contains(t, got.stderr, "WORKSTATION6.theshire.local -04:00 learned from 2383 events")
	require.Contains(t, got.stderr, "warning: WORKSTATION6.theshire.local: kept the offset -04:00 learned from its events in "+path+", not --utc-offset -05:00")
}

func TestHuntHostUTCOffset(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.EmpirePsExec)
	got := hunt(t, "--format", "json", "--utc-offset", "workstation6=-05:00", "--utc-offset", "NOSUCHHOST=+01:00", path)
	require.Equal(t, ExitOK, got.code, got.stderr)

	// Forcing a wrong offset on the host shifts its Security events by an
	// hour, so they no longer merge with Sysmon's.
	require.Len(t, decodeJSONRows(t, got.stdout), 2)
	require.Contains(t, got.stderr, "WORKSTATION6.theshire.local -05:00 from --utc-offset (learned -04:00)")
	require.Contains(t, got.stderr, "warning: WORKSTATION6.theshire.local: --utc-offset -05:00 replaces the offset -04:00 learned from its events in "+path)
	require.Contains(t, got.stderr, "warning: --utc-offset NOSUCHHOST=...: no loaded event")
	require.Contains(t, got.stderr, "MORDORDC.theshire.local unknown (161 events skipped: set --utc-offset)")
}

func TestHuntRuleFlags(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"window shorter than the delay", []string{"--window", "500ms"}, 0},
		{"window just long enough", []string{"--window", "578ms"}, 1},
		{"other parent name", []string{"--parent-name", "svchost.exe"}, 0},
		{"parent names include services.exe", []string{"--parent-name", "svchost.exe", "--parent-name", "SERVICES.EXE"}, 1},
		{"loopback included", []string{"--include-loopback"}, 1},
		{"clock tolerance", []string{"--clock-tolerance", "2s"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := hunt(t, append([]string{"--format", "json"}, tt.args...)...)
			require.Equal(t, ExitOK, got.code, got.stderr)
			require.Len(t, decodeJSONRows(t, got.stdout), tt.want)
		})
	}
}

func TestQueryBundledSample(t *testing.T) {
	t.Parallel()

	got := query(t, "--format", "csv", "SELECT eventid, count(*) AS events FROM windows_events WHERE eventid IN (1, 3, 4688, 5156) GROUP BY eventid ORDER BY eventid")
	require.Equal(t, ExitOK, got.code, got.stderr)
	require.Equal(t, "eventid,events\r\n1,3\r\n3,5\r\n4688,3\r\n5156,9\r\n", got.stdout)
	require.Contains(t, got.stderr, "bundled sample")
	require.True(t, strings.HasSuffix(got.stderr, "; 4 rows\n"), got.stderr)
}

func TestQueryTimeTableIsRecordingClock(t *testing.T) {
	t.Parallel()

	got := query(t, "--format", "csv", "SELECT unix_time FROM time")
	require.Equal(t, ExitOK, got.code, got.stderr)
	require.Equal(t, "unix_time\r\n1600618618\r\n", got.stdout)
}

// The rows of hunt in every format carry the same values.
func TestOutputFormatsRoundTrip(t *testing.T) {
	t.Parallel()

	reference := decodeJSONRows(t, hunt(t, "--format", "json").stdout)
	require.Len(t, reference, 1)

	ndjson := hunt(t, "--format", "ndjson")
	require.Equal(t, reference, decodeNDJSONRows(t, ndjson.stdout))

	csvOut := hunt(t, "--format", "csv")
	records, err := csv.NewReader(strings.NewReader(csvOut.stdout)).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, 2)
	fromCSV := map[string]string{}
	for i, name := range records[0] {
		fromCSV[name] = records[1][i]
	}
	require.Equal(t, reference[0], fromCSV)

	// The table's 21 columns do not fit in 120 cells, so it prints one
	// "column = value" line per column; long values end in an ellipsis.
	table := hunt(t, "--format", "table")
	lines := strings.Split(strings.TrimSuffix(table.stdout, "\n"), "\n")
	require.Len(t, lines, len(reference[0]))
	for _, line := range lines {
		name, value, ok := strings.Cut(strings.TrimLeft(line, " "), " =")
		require.True(t, ok, line)
		value = strings.TrimPrefix(value, " ")
		want := reference[0][name]
		if cut, ok := strings.CutSuffix(value, "…"); ok {
			require.True(t, strings.HasPrefix(want, cut), "column %s: %q is not a prefix of %q", name, cut, want)
			continue
		}
		require.Equal(t, want, value, "column %s", name)
	}
}

// Overlapping exports store each event once, so a file given twice reports
// its detection once and query counts each event once.
func TestHuntDropsDuplicateRows(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), "excerpt.json")
	require.NoError(t, os.WriteFile(path, sample, 0o600))

	got := hunt(t, "--format", "json", path, path)
	require.Equal(t, ExitOK, got.code, got.stderr)
	rows := decodeJSONRows(t, got.stdout)
	require.Len(t, rows, 1)
	requireEmpireDetection(t, rows[0])
	require.Contains(t, got.stderr, "2 files (nxlog); loaded windows_events 40;")
	require.Contains(t, got.stderr, "row identical to one loaded before: 40")

	events := query(t, "--format", "csv", path, path, "SELECT count(*) AS events FROM windows_events")
	require.Equal(t, ExitOK, events.code, events.stderr)
	require.Equal(t, "events\r\n40\r\n", events.stdout)
}

// The table reports one detection when every event is stored twice, as
// happens when rows reach osquery's tables without the loader's duplicate
// check: the Empire recording's Sysmon events carry no ProcessId, so the
// detector must merge the two copies without a pid.
func TestDetectionOfDuplicatedRows(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	batch, err := telemetry.Load(ctx, bytes.NewReader(sample), SampleName, telemetry.Options{})
	require.NoError(t, err)
	e, err := engine.Open(ctx, engine.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer e.Close()
	for table, rows := range batch.Rows {
		require.NoError(t, e.Insert(ctx, table, rows))
		require.NoError(t, e.Insert(ctx, table, rows))
	}
	stored, err := e.QueryRows(ctx, "SELECT count(*) AS events FROM windows_events")
	require.NoError(t, err)
	require.Equal(t, "80", stored[0]["events"], "every event is stored twice")

	s := newSummary()
	s.addBatch(SampleName, batch)
	e.SetClock(s.clock)
	cfg, err := parseFlags(huntCommand, nil, false)
	require.NoError(t, err)
	_, err = attachTables(e, huntCommand, cfg, s, io.Discard)
	require.NoError(t, err)

	rows, err := e.QueryRows(ctx, "SELECT * FROM "+detectionTable)
	require.NoError(t, err)
	pids := make([]string, len(rows))
	for i, row := range rows {
		pids[i] = row["pid"]
	}
	require.Equal(t, []string{"9028"}, pids, "child pids of the detections")
	requireEmpireDetection(t, rows[0])
	require.Equal(t, "security,sysmon", rows[0]["process_sources"])
}

// packHuntSQL is the pack's plain-SQL hunt, which starts with "--" comments.
const packHuntSQL = "../../pack/queries/remote_service_launches_sysmon_hunt.sql"

func TestQueryPackHuntSQL(t *testing.T) {
	t.Parallel()

	statement, err := os.ReadFile(packHuntSQL)
	require.NoError(t, err)
	path := testrecordings.Path(t, testrecordings.EmpirePsExec)

	runs := map[string]func() outcome{
		"argument": func() outcome { return query(t, "--format", "json", path, string(statement)) },
		"sql file": func() outcome { return query(t, "--format", "json", "--sql-file", packHuntSQL, path) },
		"sql from stdin": func() outcome {
			var stdout, stderr bytes.Buffer
			code := RunQuery(t.Context(), []string{"--format", "json", "--sql-file", "-", path}, bytes.NewReader(statement), &stdout, &stderr)
			return outcome{stdout: stdout.String(), stderr: stderr.String(), code: code}
		},
	}
	for name, run := range runs {
		t.Run(name, func(t *testing.T) {
			got := run()
			require.Equal(t, ExitOK, got.code, got.stderr)

			// interface_addresses is empty offline, so the query takes
			// Sysmon's destination as the local side, which is right for
			// inbound connections in this recording.
			rows := decodeJSONRows(t, got.stdout)
			require.Len(t, rows, 1)
			require.Equal(t, "WORKSTATION6.theshire.local", rows[0]["host"])
			require.Equal(t, "172.18.39.6", rows[0]["local_address"])
			require.Equal(t, "49726", rows[0]["local_port"])
			require.Equal(t, "172.18.39.5", rows[0]["remote_address"])
			require.Equal(t, "56608", rows[0]["remote_port"])
			require.Equal(t, "578", rows[0]["delay_ms"])
		})
	}
}

func TestQueryMissingSQL(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.EmpirePsExec)
	empty := filepath.Join(t.TempDir(), "empty.sql")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	for name, args := range map[string][]string{
		"file only":      {path},
		"file name last": {path, "other.json"},
		"empty sql file": {"--sql-file", empty, path},
	} {
		t.Run(name, func(t *testing.T) {
			got := query(t, args...)
			require.Equal(t, ExitUsage, got.code, got.stderr)
			require.Empty(t, got.stdout)
			require.Contains(t, got.stderr, "Usage: svclaunch query [flags]")
			require.NotContains(t, got.stderr, "bundled sample")
		})
	}

	got := query(t, "--sql-file", filepath.Join(t.TempDir(), "missing.sql"), path)
	require.Equal(t, ExitRuntime, got.code, got.stderr)
	require.Contains(t, got.stderr, "missing.sql: file not found")
}

func TestQuerySourcesOfRecording(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.EmpirePsExec)
	got := query(t, "--format", "json", path, "SELECT source, status, hint FROM remote_service_launch_sources")
	require.Equal(t, ExitOK, got.code, got.stderr)

	// The recording holds only Windows events, so the Unix sources are
	// left out, and the empty ETW source names the recording.
	rows := decodeJSONRows(t, got.stdout)
	require.Equal(t, []map[string]string{
		{"source": "sysmon", "status": "ok", "hint": ""},
		{"source": "security", "status": "ok", "hint": ""},
		{"source": "etw", "status": "empty", "hint": "the loaded telemetry holds no process_etw_events rows"},
	}, rows)
}
