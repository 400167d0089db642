package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// The fuzz targets below run their seeds in every `go test`: the files under
// testdata/fuzz/<target> (hand-written inputs and every input a fuzzer once
// failed on) and, when SVCLAUNCH_TESTDATA is set, lines of the recordings.
// Run one for longer with, for example:
//
//	go test ./internal/telemetry -run '^$' -fuzz '^FuzzLoadLines$' -fuzztime 3m -parallel 1

// lineFormats are the formats FuzzLoadLines forces, indexed by its format
// argument. FormatAuto detects the format from the first line.
var lineFormats = []Format{FormatAuto, FormatNXLog, FormatPythonEvtx, FormatECS, FormatOsqueryResults}

// recordingSeedLines returns a few lines of each JSON-lines recording: the
// first lines, and lines of the Sysmon and Security events that svclaunch
// reads.
func recordingSeedLines(f *testing.F) [][]byte {
	f.Helper()

	interesting := func(line []byte) bool {
		for _, id := range []string{`"EventID":1,`, `"EventID":3,`, `"EventID":4688,`, `"EventID":5156,`, `"EventID": 1,`, `"EventID": 3,`} {
			if bytes.Contains(line, []byte(id)) {
				return true
			}
		}
		return false
	}

	var seeds [][]byte
	for _, recording := range []string{testrecordings.EmpirePsExec, testrecordings.MeterpreterPsExecJSONL, testrecordings.BenignSysmonJSONL} {
		first := testrecordings.Seeds(f, recording, 3, nil)
		events := testrecordings.Seeds(f, recording, 6, interesting)
		if len(first) > 0 {
			seeds = append(seeds, bytes.Join(first, []byte("\n")))
		}
		if len(events) > 0 {
			seeds = append(seeds, bytes.Join(events, []byte("\n")))
		}
		seeds = append(seeds, events...)
	}
	return seeds
}

// nonEmptyLines counts the lines Load reads as events: those with text
// other than spaces once a leading byte order mark is removed.
func nonEmptyLines(data []byte) int {
	n := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		if i == 0 {
			line = bytes.TrimPrefix(bytes.TrimSpace(line), []byte(utf8BOM))
		}
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// requireWindowsEventRows checks every windows_events row that a Windows
// event layout produced: the columns osquery always fills are present and
// well-formed, data is JSON with every EventData value a string, and eid is
// unique.
func requireWindowsEventRows(t *testing.T, b *Batch) {
	t.Helper()

	seen := map[string]bool{}
	rows := b.Rows[WindowsEventsTable]
	require.Len(t, b.Hosts[WindowsEventsTable], len(rows))
	for _, row := range rows {
		for _, column := range []string{"time", "datetime", "source", "provider_name", "computer_name", "eventid", "data", "eid"} {
			require.NotEmpty(t, row[column], "column %s of %v", column, row)
		}

		_, err := strconv.ParseInt(row["time"], 10, 64)
		require.NoError(t, err, "time %q", row["time"])
		_, err = time.Parse(time.RFC3339Nano, row["datetime"])
		require.NoError(t, err, "datetime %q", row["datetime"])
		id, err := strconv.Atoi(row["eventid"])
		require.NoError(t, err, "eventid %q", row["eventid"])
		require.True(t, id >= 0 && id <= 65535, "eventid %d", id)

		require.True(t, json.Valid([]byte(row["data"])), "data %q", row["data"])
		var envelope map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(row["data"]), &envelope))
		require.Len(t, envelope, 1, "data %q", row["data"])
		for _, raw := range envelope {
			var fields map[string]string
			var values []string
			var empty string
			decoded := json.Unmarshal(raw, &fields) == nil || json.Unmarshal(raw, &values) == nil || json.Unmarshal(raw, &empty) == nil
			require.True(t, decoded, "EventData must hold string values only: %s", raw)
		}

		require.False(t, seen[row["eid"]], "eid %s repeated", row["eid"])
		seen[row["eid"]] = true
	}
}

// FuzzLoadLines loads JSON lines in each layout. Load returns an error or
// a batch, never panics, and for the Windows event layouts every non-empty
// line becomes one row or one counted skip.
func FuzzLoadLines(f *testing.F) {
	for _, seed := range recordingSeedLines(f) {
		f.Add(seed, uint8(0))
	}

	f.Fuzz(func(t *testing.T, data []byte, formatIndex uint8) {
		format := lineFormats[int(formatIndex)%len(lineFormats)]
		// A fixed offset lets NXLog lines load without a Sysmon line to
		// learn it from; half of the runs learn it instead.
		var opts Options
		if formatIndex&0x80 != 0 {
			offset := -4 * time.Hour
			opts.UTCOffset = &offset
		}
		opts.Format = format

		b, err := Load(context.Background(), bytes.NewReader(data), "fuzz.json", opts)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}

		require.NotNil(t, b)
		switch b.Format {
		case FormatNXLog, FormatPythonEvtx, FormatECS:
			requireWindowsEventRows(t, b)
			require.Equal(t, nonEmptyLines(data), len(b.Rows[WindowsEventsTable])+b.SkippedTotal(),
				"every line is a row or a counted skip (skipped %v)", b.Skipped)
		case FormatOsqueryResults:
			for table, rows := range b.Rows {
				require.Len(t, b.Hosts[table], len(rows))
			}
		default:
			t.Fatalf("unexpected format %q", b.Format)
		}
	})
}

// FuzzLoadEvtx loads .evtx bytes: an error or rows, never a panic.
func FuzzLoadEvtx(f *testing.F) {
	// The meterpreter recording is one header and one chunk.
	if content := testrecordings.SeedFile(f, testrecordings.MeterpreterPsExecEVTX, 0); content != nil {
		f.Add(content)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Load(context.Background(), bytes.NewReader(data), "fuzz.evtx", Options{Format: FormatEvtx})
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		requireWindowsEventRows(t, b)
	})
}

// FuzzDecodeObject checks the order-keeping object decoder against
// encoding/json: it accepts exactly the JSON objects, and reads the same
// keys and string values.
func FuzzDecodeObject(f *testing.F) {
	for _, seed := range recordingSeedLines(f) {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, text []byte) {
		obj, err := decodeObject(text)

		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(text, &want)
		if err != nil {
			require.Error(t, wantErr, "decodeObject rejected a JSON object: %v", err)
			return
		}
		require.NoError(t, wantErr, "decodeObject accepted what encoding/json rejects")
		require.Len(t, obj, len(want), "number of keys")

		for _, m := range obj {
			raw, ok := want[m.name]
			require.True(t, ok, "key %q", m.name)
			require.JSONEq(t, string(raw), string(m.value), "value of %q", m.name)

			var s string
			if json.Unmarshal(raw, &s) == nil {
				require.Equal(t, s, valueText(m.value), "text of %q", m.name)
			}
		}
	})
}

// FuzzParseTimestamp checks the loader's time parser: an accepted time is a
// real date, and wherever time.Parse reads the same text as RFC 3339, both
// agree on the instant.
func FuzzParseTimestamp(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		parsed, fraction, zoned, ok := parseTimestamp(s)
		if !ok {
			return
		}
		require.Equal(t, time.UTC, parsed.Location())
		require.Equal(t, strings.ContainsAny(s[19:], ".,"), fraction, "fraction of %q", s)

		rfc3339 := s[:10] + "T" + s[11:]
		if !zoned {
			rfc3339 += "Z"
		}
		if reference, err := time.Parse(time.RFC3339Nano, rfc3339); err == nil {
			require.True(t, reference.Equal(parsed), "%q: parseTimestamp %v, time.Parse %v", s, parsed, reference)
		}
		require.True(t, utf8.ValidString(s[:19]), "date and clock of %q", s)
	})
}
