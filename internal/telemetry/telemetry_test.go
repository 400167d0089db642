package telemetry_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/unicode"

	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// eventData decodes a windows_events.data value.
func eventData(t *testing.T, row map[string]string) map[string]string {
	t.Helper()

	var data struct {
		EventData map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(row["data"]), &data), "data of row %v", row)
	return data.EventData
}

// findEvents returns the windows_events rows with the given event id whose
// EventData contains every pair in want.
func findEvents(t *testing.T, b *telemetry.Batch, eventID string, want map[string]string) []map[string]string {
	t.Helper()

	var out []map[string]string
	for _, row := range b.Rows[telemetry.WindowsEventsTable] {
		if row["eventid"] != eventID {
			continue
		}
		data := eventData(t, row)
		match := true
		for k, v := range want {
			if data[k] != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, row)
		}
	}
	return out
}

func loadRecording(t *testing.T, recording string, opts telemetry.Options) *telemetry.Batch {
	t.Helper()

	b, err := telemetry.LoadFile(t.Context(), testrecordings.Path(t, recording), opts)
	require.NoError(t, err)
	return b
}

func TestLoadNXLogEmpirePsExec(t *testing.T) {
	t.Parallel()

	b := loadRecording(t, testrecordings.EmpirePsExec, telemetry.Options{})
	require.Equal(t, telemetry.FormatNXLog, b.Format)

	t.Run("sysmon child of services.exe", func(t *testing.T) {
		rows := findEvents(t, b, "1", map[string]string{"ParentProcessId": "704", "Image": `C:\Windows\System32\cmd.exe`})
		require.Len(t, rows, 1)
		row := rows[0]

		// EventTime 12:16:56 local at UTC-4; UtcTime keeps the milliseconds.
		require.Equal(t, "2020-09-20T16:16:56Z", row["datetime"])
		// EventReceivedTime 12:16:57 local.
		require.Equal(t, "1600618617", row["time"])
		require.Equal(t, "Microsoft-Windows-Sysmon/Operational", row["source"])
		require.Equal(t, "Microsoft-Windows-Sysmon", row["provider_name"])
		require.Equal(t, "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", row["provider_guid"])
		require.Equal(t, "WORKSTATION6.theshire.local", row["computer_name"])
		require.Equal(t, "1", row["task"])
		require.Equal(t, "4", row["level"])
		require.Equal(t, "0x8000000000000000", row["keywords"])
		require.NotEmpty(t, row["eid"])

		data := eventData(t, row)
		require.Equal(t, "2020-09-20 16:16:56.597", data["UtcTime"])
		require.Equal(t, "{d273d0f0-8078-5f67-cb06-000000000800}", data["ProcessGuid"])
		for _, header := range []string{"EventTime", "EventReceivedTime", "Hostname", "Message", "Category", "tags", "host", "port", "@version", "@timestamp", "SourceModuleName", "SourceModuleType", "EventType", "SeverityValue", "Opcode", "OpcodeValue", "Keywords", "AccountName", "UserID"} {
			require.NotContains(t, data, header)
		}
	})

	t.Run("security 5156 accepted by services.exe", func(t *testing.T) {
		rows := findEvents(t, b, "5156", map[string]string{"ProcessId": "704", "SourceAddress": "172.18.39.5", "SourcePort": "56608"})
		require.Len(t, rows, 1)
		row := rows[0]

		require.Equal(t, "security", row["source"])
		require.Equal(t, "2020-09-20T16:16:56Z", row["datetime"])
		require.Equal(t, "0", row["level"], "audit events have Level 0")
		require.Equal(t, "12810", row["task"])
		require.Equal(t, "0x8020000000000000", row["keywords"])
		require.Equal(t, "49726", eventData(t, row)["DestPort"])
		require.Equal(t, "%%14592", eventData(t, row)["Direction"])
	})

	t.Run("offsets", func(t *testing.T) {
		for _, host := range []string{"WORKSTATION5.theshire.local", "WORKSTATION6.theshire.local"} {
			info := b.Offsets[host]
			require.Equal(t, telemetry.OffsetLearned, info.Method, host)
			require.Equal(t, -4*time.Hour, info.Offset, host)
			require.Positive(t, info.Events, host)
			require.Zero(t, info.Disagreeing, host)
		}

		short := b.Offsets["WORKSTATION6"]
		require.Equal(t, telemetry.OffsetLearned, short.Method)
		require.Equal(t, -4*time.Hour, short.Offset)
		require.Equal(t, "WORKSTATION6.theshire.local", short.From)

		// The domain controller has no Sysmon events in this recording.
		dc := b.Offsets["MORDORDC.theshire.local"]
		require.Equal(t, telemetry.OffsetUnknown, dc.Method)
		require.Equal(t, 161, dc.Skipped)
		require.Equal(t, 161, b.Skipped[telemetry.SkipUnknownOffset])
	})

	t.Run("counts", func(t *testing.T) {
		rows := b.Rows[telemetry.WindowsEventsTable]
		require.Len(t, rows, 4348-161)
		require.Len(t, b.Hosts[telemetry.WindowsEventsTable], len(rows))
		require.Equal(t, 161, b.SkippedTotal())
		for i, row := range rows {
			require.Equal(t, row["computer_name"], b.Hosts[telemetry.WindowsEventsTable][i])
		}
	})

	t.Run("clock", func(t *testing.T) {
		var newest int64
		for _, row := range b.Rows[telemetry.WindowsEventsTable] {
			var n int64
			require.NoError(t, json.Unmarshal([]byte(row["time"]), &n))
			newest = max(newest, n)
		}
		require.Equal(t, newest, b.Clock)
	})
}

func TestLoadNXLogLearnsDomainControllerOffset(t *testing.T) {
	t.Parallel()

	b := loadRecording(t, testrecordings.EmpireRunKeysReboot, telemetry.Options{})

	for _, host := range []string{"WORKSTATION5.theshire.local", "WORKSTATION6.theshire.local", "MORDORDC.theshire.local"} {
		info := b.Offsets[host]
		require.Equal(t, telemetry.OffsetLearned, info.Method, host)
		require.Equal(t, -4*time.Hour, info.Offset, host)
	}
	require.Equal(t, 224, b.Offsets["MORDORDC.theshire.local"].Events)
	require.Zero(t, b.SkippedTotal())
	require.Len(t, b.Rows[telemetry.WindowsEventsTable], 2600)
}

func TestLoadNXLogOffsetFlag(t *testing.T) {
	t.Parallel()

	offset := -4 * time.Hour
	b := loadRecording(t, testrecordings.EmpirePsExec, telemetry.Options{UTCOffset: &offset})

	for host, info := range b.Offsets {
		require.Equal(t, telemetry.OffsetFlag, info.Method, host)
		require.Equal(t, offset, info.Offset, host)
	}
	require.Zero(t, b.SkippedTotal())
	require.Len(t, b.Rows[telemetry.WindowsEventsTable], 4348)

	rows := findEvents(t, b, "4624", nil)
	require.NotEmpty(t, rows)
}

func TestLoadNXLogDefaultOffsetKeepsLearned(t *testing.T) {
	t.Parallel()

	fallback := -5 * time.Hour
	b := loadRecording(t, testrecordings.EmpirePsExec, telemetry.Options{DefaultUTCOffset: &fallback})

	learned := b.Offsets["WORKSTATION6.theshire.local"]
	require.Equal(t, telemetry.OffsetLearned, learned.Method)
	require.Equal(t, -4*time.Hour, learned.Offset)
	require.NotNil(t, learned.Conflict)
	require.Equal(t, fallback, *learned.Conflict)

	unlearned := b.Offsets["MORDORDC.theshire.local"]
	require.Equal(t, telemetry.OffsetDefault, unlearned.Method)
	require.Equal(t, fallback, unlearned.Offset)
	require.Zero(t, b.SkippedTotal())
}

func TestLoadNXLogHostOffsetForced(t *testing.T) {
	t.Parallel()

	b := loadRecording(t, testrecordings.EmpirePsExec, telemetry.Options{
		HostUTCOffsets: map[string]time.Duration{"workstation6": -5 * time.Hour},
	})

	for _, host := range []string{"WORKSTATION6", "WORKSTATION6.theshire.local"} {
		info := b.Offsets[host]
		require.Equal(t, telemetry.OffsetFlag, info.Method, host)
		require.Equal(t, -5*time.Hour, info.Offset, host)
		require.NotNil(t, info.Conflict, host)
		require.Equal(t, -4*time.Hour, *info.Conflict, host)
	}
	require.Equal(t, telemetry.OffsetLearned, b.Offsets["WORKSTATION5.theshire.local"].Method)
	require.Nil(t, b.Offsets["WORKSTATION5.theshire.local"].Conflict)
	require.Equal(t, telemetry.OffsetUnknown, b.Offsets["MORDORDC.theshire.local"].Method)
}

func TestLoadPythonEvtx(t *testing.T) {
	t.Parallel()

	b := loadRecording(t, testrecordings.MeterpreterPsExecJSONL, telemetry.Options{})
	require.Equal(t, telemetry.FormatPythonEvtx, b.Format)
	require.Len(t, b.Rows[telemetry.WindowsEventsTable], 10)
	require.Empty(t, b.Offsets, "python-evtx times are UTC")

	first := b.Rows[telemetry.WindowsEventsTable][0]
	require.Equal(t, "2019-04-30T20:26:51.7935890Z", first["datetime"])
	require.Equal(t, "1556656011", first["time"])
	require.Equal(t, "18", first["eventid"])
	require.Equal(t, "IEWIN7", first["computer_name"])
	require.Equal(t, "4", first["level"])
	require.Equal(t, "18", first["task"])
	require.Equal(t, "0x8000000000000000", first["keywords"])
	require.Equal(t, "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}", first["provider_guid"])

	data := eventData(t, first)
	require.Equal(t, "", data["RuleName"], "null becomes an empty string")
	require.Equal(t, `\ntsvcs`, data["PipeName"])
	for _, header := range []string{"TimeCreated", "EventRecordID", "Computer", "Channel", "SecurityUserID", "ExecutionProcessID"} {
		require.NotContains(t, data, header)
	}

	rows := findEvents(t, b, "1", map[string]string{"ParentProcessId": "460", "ProcessId": "3348"})
	require.Len(t, rows, 1)
	require.Equal(t, "2019-04-30T20:26:52.0904640Z", rows[0]["datetime"], "TimeCreated, not UtcTime")
	require.Equal(t, "2019-04-30 20:26:51.949", eventData(t, rows[0])["UtcTime"])
	require.Equal(t, "0x3e7", eventData(t, rows[0])["LogonId"], "python-evtx pads hex values to 16 digits")

	connections := findEvents(t, b, "3", map[string]string{"SourcePort": "445"})
	require.NotEmpty(t, connections)
	require.Equal(t, "false", eventData(t, connections[0])["Initiated"], "python-evtx writes False")
}

func TestLoadGzipEqualsPlain(t *testing.T) {
	t.Parallel()

	for _, recording := range []string{testrecordings.EmpirePsExec, testrecordings.MeterpreterPsExecJSONL} {
		t.Run(filepath.Base(recording), func(t *testing.T) {
			t.Parallel()

			path := testrecordings.Path(t, recording)
			plain, err := os.ReadFile(path)
			require.NoError(t, err)

			var compressed bytes.Buffer
			zw := gzip.NewWriter(&compressed)
			_, err = zw.Write(plain)
			require.NoError(t, err)
			require.NoError(t, zw.Close())

			want, err := telemetry.Load(t.Context(), bytes.NewReader(plain), path, telemetry.Options{})
			require.NoError(t, err)
			got, err := telemetry.Load(t.Context(), &compressed, path+".gz", telemetry.Options{})
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestLoadUTF16EqualsUTF8(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.EmpirePsExec)
	plain, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := telemetry.Load(t.Context(), bytes.NewReader(plain), path, telemetry.Options{})
	require.NoError(t, err)

	for name, order := range map[string]unicode.Endianness{"little endian": unicode.LittleEndian, "big endian": unicode.BigEndian} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			// Windows PowerShell 5.1's ">" writes a BOM before the text.
			encoded, err := unicode.UTF16(order, unicode.UseBOM).NewEncoder().Bytes(plain)
			require.NoError(t, err)

			got, err := telemetry.Load(t.Context(), bytes.NewReader(encoded), path, telemetry.Options{})
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()

	nxlogLine := `{"EventTime":"2020-09-20 12:16:56","EventReceivedTime":"2020-09-20 12:16:57","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624,"Task":12544}`

	tests := []struct {
		name    string
		input   string
		format  telemetry.Format
		wantErr []string
	}{
		{
			name:    "unknown format",
			input:   `{"hello":"world"}` + "\n",
			wantErr: []string{"input.json line 1", "unknown format", "[hello]", "NXLog"},
		},
		{
			name:    "first line not JSON",
			input:   "\n\nnot json\n",
			wantErr: []string{"unknown format: input.json line 3 is not JSON (expected Windows event JSON lines, an osquery results log, or .evtx)"},
		},
		{
			name:    "csv",
			input:   "id,time,host\n1,1600618616,WORKSTATION6\n",
			wantErr: []string{"unknown format: input.json line 1 is not JSON (expected"},
		},
		{
			name:    "json array",
			input:   "[" + nxlogLine + "]\n",
			wantErr: []string{"unknown format: input.json line 1 is JSON but not an object", "NXLog"},
		},
		{
			name:    "truncated last line",
			input:   nxlogLine + "\n" + nxlogLine[:40],
			wantErr: []string{"input.json line 2", "input ends inside this line", "truncated"},
		},
		{
			name:    "evtx format on JSON",
			input:   nxlogLine + "\n",
			format:  telemetry.FormatEvtx,
			wantErr: []string{"input.json", ".evtx magic"},
		},
		{
			name:    "unknown format option",
			input:   nxlogLine + "\n",
			format:  "csv",
			wantErr: []string{"input.json", `unknown format "csv"`},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := telemetry.Load(t.Context(), strings.NewReader(tt.input), "input.json", telemetry.Options{Format: tt.format})
			require.Error(t, err)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
		})
	}

	t.Run("unreadable file", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "missing.json")
		_, err := telemetry.LoadFile(t.Context(), path, telemetry.Options{})
		require.ErrorIs(t, err, os.ErrNotExist)
		require.Contains(t, err.Error(), path)
	})

	t.Run("directory", func(t *testing.T) {
		t.Parallel()

		dir := t.TempDir()
		_, err := telemetry.LoadFile(t.Context(), dir, telemetry.Options{})
		require.Error(t, err)
		require.Contains(t, err.Error(), dir)
	})

	t.Run("truncated gzip", func(t *testing.T) {
		t.Parallel()

		var compressed bytes.Buffer
		zw := gzip.NewWriter(&compressed)
		_, err := zw.Write([]byte(strings.Repeat(nxlogLine+"\n", 50)))
		require.NoError(t, err)
		require.NoError(t, zw.Close())

		cut := compressed.Bytes()[:compressed.Len()-20]
		_, err = telemetry.Load(t.Context(), bytes.NewReader(cut), "input.json.gz", telemetry.Options{})
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		require.Contains(t, err.Error(), "input.json.gz line")
		require.Contains(t, err.Error(), "truncated")
	})

	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := telemetry.Load(ctx, strings.NewReader(nxlogLine+"\n"), "input.json", telemetry.Options{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestLoadSkipsBadEvents(t *testing.T) {
	t.Parallel()

	good := `{"EventTime":"2020-09-20 12:16:56","EventReceivedTime":"2020-09-20 12:16:57","Hostname":"H","SourceName":"Microsoft-Windows-Sysmon","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"Task":1,"UtcTime":"2020-09-20 16:16:55.950"}`
	lines := []string{
		good,
		`{"EventTime":"2020-09-20 12:16:56","Hostname":"H", broken`,
		`["an","array"]`,
		`{"EventTime":"2020-09-20 12:16:56","Hostname":"H","SourceName":"P","Channel":"Security"}`,
		`{"EventTime":"yesterday","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624}`,
		`{"EventTime":"2020-09-20 12:16:57","Hostname":"H","SourceName":"P","EventID":4624}`,
		`{"EventTime":"2020-09-20 12:16:57","Hostname":"OTHER","SourceName":"P","Channel":"Security","EventID":4624}`,
		`{"EventTime":"2020-09-20 12:16:57","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624,"Big":"` + strings.Repeat("x", telemetry.MaxLineBytes) + `"}`,
		`{"EventTime":"2250-09-20 12:16:57","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624}`,
		`{"EventTime":"1980-09-20 12:16:57","Hostname":"H","SourceName":"P","Channel":"Security","EventID":4624}`,
		good,
	}

	b, err := telemetry.Load(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), "input.json", telemetry.Options{})
	require.NoError(t, err)

	require.Len(t, b.Rows[telemetry.WindowsEventsTable], 2)
	require.Equal(t, map[string]int{
		telemetry.SkipMalformedJSON:   1,
		telemetry.SkipNotObject:       1,
		telemetry.SkipMissingEventID:  1,
		telemetry.SkipMissingTime:     1,
		telemetry.SkipMissingChannel:  1,
		telemetry.SkipUnknownOffset:   1,
		telemetry.SkipLineTooLong:     1,
		telemetry.SkipImplausibleTime: 2,
	}, b.Skipped)
	require.Equal(t, time.Date(2020, 9, 20, 16, 16, 57, 0, time.UTC).Unix(), b.Clock, "an event of 2250 moves no clock")
	require.Equal(t, telemetry.OffsetUnknown, b.Offsets["OTHER"].Method)
	require.Equal(t, 1, b.Offsets["OTHER"].Skipped)
	require.Equal(t, -4*time.Hour, b.Offsets["H"].Offset)
}

func TestLoadSkippedLineNumbers(t *testing.T) {
	t.Parallel()

	sysmon := `{"EventTime":"2020-09-20 12:16:56","Hostname":"H","SourceName":"Microsoft-Windows-Sysmon","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"UtcTime":"2020-09-20 16:16:56.597"}`
	unplaced := `{"EventTime":"2020-09-20 12:16:56","Hostname":"OTHER","SourceName":"P","Channel":"Security","EventID":4624}`
	lines := []string{sysmon, "{broken", sysmon, unplaced, ""}
	for range 7 {
		lines = append(lines, "{broken")
	}

	b, err := telemetry.Load(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), "input.json", telemetry.Options{})
	require.NoError(t, err)
	require.Equal(t, 8, b.Skipped[telemetry.SkipMalformedJSON])
	require.Equal(t, []int{2, 6, 7, 8, 9}, b.SkippedLines[telemetry.SkipMalformedJSON])
	require.Equal(t, []int{4}, b.SkippedLines[telemetry.SkipUnknownOffset])
}

func TestLoadEmptyInput(t *testing.T) {
	t.Parallel()

	b, err := telemetry.Load(t.Context(), strings.NewReader("\n\n"), "empty.json", telemetry.Options{})
	require.NoError(t, err)
	require.Empty(t, b.Rows)
	require.Zero(t, b.SkippedTotal())
}

func TestFormatDatetime(t *testing.T) {
	t.Parallel()

	at := time.Date(2019, 4, 30, 20, 26, 51, 793589700, time.UTC)
	require.Equal(t, "2019-04-30T20:26:51.7935897Z", telemetry.FormatDatetime(at, true))
	require.Equal(t, "2019-04-30T20:26:51Z", telemetry.FormatDatetime(at, false))
	require.Equal(t, "2019-04-30T20:26:51.0000000Z", telemetry.FormatDatetime(at.Truncate(time.Second), true))
}
