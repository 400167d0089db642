package telemetry_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// TestEvtxMatchesPythonEvtx checks that each .evtx recording and its
// python-evtx flattening load into the same rows. They differ only in
// datetime. The .evtx row has the exact FILETIME (100 ns). python-evtx
// computes float(filetime) * 1e-7 - 11644473600 as a float64, and Python's
// datetime rounds that half-to-even to microseconds, so its value can be a
// few microseconds off. The test redoes that computation on the .evtx value
// and expects python-evtx's text exactly.
func TestEvtxMatchesPythonEvtx(t *testing.T) {
	t.Parallel()

	pairs := []struct{ evtx, jsonl string }{
		{testrecordings.MeterpreterPsExecEVTX, testrecordings.MeterpreterPsExecJSONL},
		{testrecordings.UnquotedServiceEVTX, testrecordings.UnquotedServiceJSONL},
		{testrecordings.BenignSysmonEVTX, testrecordings.BenignSysmonJSONL},
	}

	for _, pair := range pairs {
		t.Run(pair.evtx, func(t *testing.T) {
			t.Parallel()

			native := loadRecording(t, pair.evtx, telemetry.Options{})
			flat := loadRecording(t, pair.jsonl, telemetry.Options{})
			require.Equal(t, telemetry.FormatEvtx, native.Format)
			require.Zero(t, native.SkippedTotal())
			require.Empty(t, native.Notes, "every record's typed values were read")

			nativeRows := native.Rows[telemetry.WindowsEventsTable]
			flatRows := flat.Rows[telemetry.WindowsEventsTable]
			require.Len(t, nativeRows, len(flatRows))
			require.NotEmpty(t, nativeRows)

			for i := range nativeRows {
				want, got := flatRows[i], nativeRows[i]
				for _, column := range []string{"eventid", "computer_name", "source", "provider_name", "provider_guid", "task", "level", "keywords", "time", "eid"} {
					require.Equal(t, want[column], got[column], "row %d column %s", i, column)
				}
				require.Equal(t, want["data"], got["data"], "row %d data", i)

				require.Len(t, got["datetime"], len("2019-04-30T20:26:51.7935897Z"), "row %d datetime", i)
				nativeTime, err := time.Parse(time.RFC3339Nano, got["datetime"])
				require.NoError(t, err)
				require.Equal(t, want["datetime"], telemetry.FormatDatetime(pythonEvtxTime(nativeTime), true), "row %d datetime", i)
			}
		})
	}
}

func TestLoadEvtxMeterpreterChild(t *testing.T) {
	t.Parallel()

	b := loadRecording(t, testrecordings.MeterpreterPsExecEVTX, telemetry.Options{})

	rows := findEvents(t, b, "1", map[string]string{"ParentProcessId": "460", "ProcessId": "3348"})
	require.Len(t, rows, 1)
	row := rows[0]
	require.Equal(t, "2019-04-30T20:26:52.0904640Z", row["datetime"])
	require.Equal(t, "1556656012", row["time"], "TimeCreated in seconds, as .evtx has no receive time")
	require.Equal(t, "IEWIN7", row["computer_name"])
	require.Equal(t, "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}", row["provider_guid"])
	require.Equal(t, "0x8000000000000000", row["keywords"])

	data := eventData(t, row)
	require.Equal(t, "0x3e7", data["LogonId"], "HexInt64 as Windows renders it")
	require.Equal(t, "{365abb72-2586-5cc9-0000-0010dc530000}", data["ParentProcessGuid"], "GUID as Windows renders it")
	require.Equal(t, `C:\Windows\System32\services.exe`, data["ParentImage"])

	connections := findEvents(t, b, "3", map[string]string{"SourcePort": "445", "DestinationPort": "33801"})
	require.Len(t, connections, 1)
	require.Equal(t, "false", eventData(t, connections[0])["Initiated"], "boolean as Windows renders it")
}

func TestLoadEvtxGzipAndErrors(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.MeterpreterPsExecEVTX)
	content, err := os.ReadFile(path)
	require.NoError(t, err)

	t.Run("gzip equals plain", func(t *testing.T) {
		t.Parallel()

		var compressed bytes.Buffer
		zw := gzip.NewWriter(&compressed)
		_, err := zw.Write(content)
		require.NoError(t, err)
		require.NoError(t, zw.Close())

		want, err := telemetry.Load(t.Context(), bytes.NewReader(content), path, telemetry.Options{})
		require.NoError(t, err)
		got, err := telemetry.Load(t.Context(), &compressed, path+".gz", telemetry.Options{})
		require.NoError(t, err)
		require.Equal(t, want, got)
	})

	t.Run("cut in the free space", func(t *testing.T) {
		t.Parallel()

		want, err := telemetry.Load(t.Context(), bytes.NewReader(content), "whole.evtx", telemetry.Options{})
		require.NoError(t, err)
		b, err := telemetry.Load(t.Context(), bytes.NewReader(content[:len(content)-100]), "cut.evtx", telemetry.Options{})
		require.NoError(t, err)
		require.Empty(t, b.Skipped, "the records end before the cut")
		require.Equal(t, want.Rows, b.Rows)
	})

	t.Run("cut in the records", func(t *testing.T) {
		t.Parallel()

		// The chunk holds records 1 to 10; the cut runs through one of
		// them.
		b, err := telemetry.Load(t.Context(), bytes.NewReader(content[:4096+20000]), "cut.evtx", telemetry.Options{})
		require.NoError(t, err)
		loaded := len(b.Rows[telemetry.WindowsEventsTable])
		require.Positive(t, loaded)
		require.Less(t, loaded, 10)
		require.Equal(t, map[string]int{telemetry.SkipEvtxCut: 10 - loaded}, b.Skipped)
	})

	t.Run("shorter than the header", func(t *testing.T) {
		t.Parallel()

		_, err := telemetry.Load(t.Context(), bytes.NewReader(content[:4000]), "cut.evtx", telemetry.Options{Format: telemetry.FormatEvtx})
		require.Error(t, err)
		require.Contains(t, err.Error(), "cut.evtx")
		require.Contains(t, err.Error(), "truncated")
		require.Contains(t, err.Error(), "4096-byte file header")
	})

	t.Run("other format requested", func(t *testing.T) {
		t.Parallel()

		_, err := telemetry.Load(t.Context(), bytes.NewReader(content), "log.evtx", telemetry.Options{Format: telemetry.FormatNXLog})
		require.Error(t, err)
		require.Contains(t, err.Error(), "log.evtx")
		require.Contains(t, err.Error(), `"nxlog"`)
	})

	t.Run("invalid header", func(t *testing.T) {
		t.Parallel()

		broken := bytes.Clone(content)
		broken[0x24], broken[0x25] = 9, 9 // an unsupported minor version
		_, err := telemetry.Load(t.Context(), bytes.NewReader(broken), "broken.evtx", telemetry.Options{})
		require.Error(t, err)
		require.Contains(t, err.Error(), "broken.evtx")
		require.Contains(t, err.Error(), "invalid .evtx file")
	})
}

// pythonEvtxTime converts an exact time the way python-evtx converts a
// FILETIME: datetime.utcfromtimestamp(float(ft) * 1e-7 - 11644473600).
func pythonEvtxTime(exact time.Time) time.Time {
	filetime := exact.UnixNano()/100 + 116444736000000000
	seconds := float64(filetime)*1e-7 - 11644473600

	whole, fraction := math.Modf(seconds)
	micros := math.RoundToEven(fraction * 1e6)
	return time.Unix(int64(whole), int64(micros)*1000).UTC()
}

func TestLoadEvtxDamagedChunk(t *testing.T) {
	t.Parallel()

	path := testrecordings.Path(t, testrecordings.MeterpreterPsExecEVTX)
	content, err := os.ReadFile(path)
	require.NoError(t, err)
	whole, err := telemetry.Load(t.Context(), bytes.NewReader(content), "whole.evtx", telemetry.Options{})
	require.NoError(t, err)
	require.Len(t, whole.Rows[telemetry.WindowsEventsTable], 10, "the chunk holds records 1 to 10")

	// The only chunk follows the 4 KiB file header. Its header holds the
	// first and last record numbers at offsets 8 and 16, and its header
	// checksum at 124, which every change to the header breaks. Records
	// that damaged numbers would hide are found by walking the chunk.
	tests := []struct {
		name    string
		damage  func(file, chunk []byte) []byte
		rows    int
		skipped map[string]int
		notes   int
	}{
		{
			name: "record numbers reversed",
			damage: func(file, chunk []byte) []byte {
				binary.LittleEndian.PutUint64(chunk[8:], 50)
				binary.LittleEndian.PutUint64(chunk[16:], 10)
				return file
			},
			rows:    10,
			skipped: map[string]int{},
			notes:   10,
		},
		{
			name: "last record number too low",
			damage: func(file, chunk []byte) []byte {
				binary.LittleEndian.PutUint64(chunk[16:], 5)
				return file
			},
			rows:    10,
			skipped: map[string]int{},
			notes:   10,
		},
		{
			name: "last record number all ones",
			damage: func(file, chunk []byte) []byte {
				binary.LittleEndian.PutUint64(chunk[16:], math.MaxUint64)
				return file
			},
			rows:    10,
			skipped: map[string]int{},
			notes:   10,
		},
		{
			name: "chunk magic damaged",
			damage: func(file, chunk []byte) []byte {
				chunk[7] = '@'
				return file
			},
			skipped: map[string]int{telemetry.SkipEvtxChunk: 10},
		},
		{
			name: "header checksum wrong",
			damage: func(file, chunk []byte) []byte {
				chunk[124]++
				return file
			},
			rows:    10,
			skipped: map[string]int{},
			notes:   10,
		},
		{
			name: "unused zero chunk after it",
			damage: func(file, chunk []byte) []byte {
				return append(file, make([]byte, 65536)...)
			},
			rows:    10,
			skipped: map[string]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			file := bytes.Clone(content)
			file = tt.damage(file, file[4096:])
			b, err := telemetry.Load(t.Context(), bytes.NewReader(file), "damaged.evtx", telemetry.Options{})
			require.NoError(t, err)
			require.Len(t, b.Rows[telemetry.WindowsEventsTable], tt.rows)
			require.Equal(t, tt.skipped, b.Skipped)
			require.Equal(t, tt.notes, b.Notes[telemetry.NoteEvtxChecksum])
		})
	}
}

// TestLoadEvtxStaleChunks reads a log that was not closed: its file header
// counts one chunk, nine hold records, and eight more slots hold stale bytes
// without the chunk magic. Nothing is skipped and every checksum matches.
func TestLoadEvtxStaleChunks(t *testing.T) {
	t.Parallel()

	b := loadRecording(t, testrecordings.BenignSysmonEVTX, telemetry.Options{})
	require.Len(t, b.Rows[telemetry.WindowsEventsTable], 358)
	require.Empty(t, b.Skipped)
	require.Zero(t, b.Notes[telemetry.NoteEvtxChecksum])

	// Cut inside the stale bytes of the last slot, nothing is lost.
	content, err := os.ReadFile(testrecordings.Path(t, testrecordings.BenignSysmonEVTX))
	require.NoError(t, err)
	cut, err := telemetry.Load(t.Context(), bytes.NewReader(content[:len(content)-1]), "cut.evtx", telemetry.Options{})
	require.NoError(t, err)
	require.Len(t, cut.Rows[telemetry.WindowsEventsTable], 358)
	require.Empty(t, cut.Skipped)
}

// TestLoadEvtxLostRecords checks the counts for records that neither the
// parser nor the walk can reach, in a closed log of three chunks holding
// records 1 to 39, 40 to 81 and 82 to 87.
func TestLoadEvtxLostRecords(t *testing.T) {
	t.Parallel()

	content, err := os.ReadFile(testrecordings.Path(t, testrecordings.UnquotedServiceEVTX))
	require.NoError(t, err)

	t.Run("damaged record header", func(t *testing.T) {
		t.Parallel()

		// Records follow the 512-byte chunk header, each starting with
		// its magic and its size. Damaging the fifth record's magic ends
		// both the parser and the walk there; the chunk header still
		// declares 39 records.
		damaged := bytes.Clone(content)
		chunk := damaged[4096 : 4096+65536]
		offset := 0x200
		for range 4 {
			offset += int(binary.LittleEndian.Uint32(chunk[offset+4:]))
		}
		copy(chunk[offset:], "\xff\xff\xff\xff")

		b, err := telemetry.Load(t.Context(), bytes.NewReader(damaged), "damaged.evtx", telemetry.Options{})
		require.NoError(t, err)
		require.Len(t, b.Rows[telemetry.WindowsEventsTable], 4+42+6)
		require.Equal(t, map[string]int{telemetry.SkipEvtxRecord: 35}, b.Skipped)
	})

	t.Run("cut at a chunk boundary", func(t *testing.T) {
		t.Parallel()

		// The file header lists three chunks and the next record number
		// 88, so the six records of the missing chunk are counted.
		b, err := telemetry.Load(t.Context(), bytes.NewReader(content[:4096+2*65536]), "cut.evtx", telemetry.Options{})
		require.NoError(t, err)
		require.Len(t, b.Rows[telemetry.WindowsEventsTable], 81)
		require.Equal(t, map[string]int{telemetry.SkipEvtxUnread: 6}, b.Skipped)
	})

	// Each of the 87 records is loaded or counted once.
	for _, tt := range []struct {
		name string
		file func() []byte
	}{
		{name: "cut inside the first chunk", file: func() []byte { return content[:4200] }},
		{name: "cut inside the records of the first chunk", file: func() []byte { return content[:20000] }},
		{name: "cut inside the last chunk header", file: func() []byte { return content[:4096+2*65536+4] }},
		{name: "byte inserted in the second chunk", file: func() []byte {
			return slices.Concat(content[:4096+65536+100], []byte{0}, content[4096+65536+100:])
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b, err := telemetry.Load(t.Context(), bytes.NewReader(tt.file()), "damaged.evtx", telemetry.Options{})
			require.NoError(t, err)
			total := len(b.Rows[telemetry.WindowsEventsTable])
			for _, n := range b.Skipped {
				total += n
			}
			require.Equal(t, 87, total, "loaded %d, skipped %v", len(b.Rows[telemetry.WindowsEventsTable]), b.Skipped)
		})
	}

	t.Run("cut in unused space", func(t *testing.T) {
		t.Parallel()

		b, err := telemetry.Load(t.Context(), bytes.NewReader(content[:len(content)-1]), "cut.evtx", telemetry.Options{})
		require.NoError(t, err)
		require.Len(t, b.Rows[telemetry.WindowsEventsTable], 87)
		require.Empty(t, b.Skipped)
	})
}
