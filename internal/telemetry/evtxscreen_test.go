package telemetry

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"www.velocidex.com/golang/evtx"

	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// Value kinds the synthetic chunks use.
const (
	kindSystemTime = 0x12
	kindBinXML     = 0x21
)

// value is one substitution value of a synthetic template instance.
type value struct {
	kind byte
	data []byte
}

func binXMLValue(data []byte) value { return value{kind: kindBinXML, data: data} }

// descriptors returns the size and kind descriptors of values, then their
// data.
func descriptors(values []value) []byte {
	var b []byte
	for _, v := range values {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v.data)))
		b = append(b, v.kind, 0)
	}
	for _, v := range values {
		b = append(b, v.data...)
	}
	return b
}

// defineTemplate returns a template instance, after a fragment header, that
// defines template id inline with body. It writes count as the value count,
// and then the descriptors and data of values, so that count may claim
// more values than follow.
func defineTemplate(id uint32, body []byte, count uint32, values ...value) []byte {
	b := []byte{0x0f, 0x01, 0x01, 0x00} // fragment header
	b = append(b, 0x0c, 0x01)           // instance token, version
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint32(b, 0) // definition offset
	b = binary.LittleEndian.AppendUint32(b, 0) // next template offset
	b = append(b, make([]byte, 16)...)         // template GUID
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	b = binary.LittleEndian.AppendUint32(b, count)
	return append(b, descriptors(values)...)
}

// useTemplate returns an instance of a template defined before, whose value
// count the parser caps.
func useTemplate(id uint32, values ...value) []byte {
	b := []byte{0x0c, 0x01}
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint32(b, 0) // definition offset
	b = binary.LittleEndian.AppendUint32(b, uint32(len(values)))
	return append(b, descriptors(values)...)
}

// emptyBody is a template body with no element.
var emptyBody = []byte{0x00}

// chunkWithRecord returns a 64 KiB chunk holding one record with binXML.
func chunkWithRecord(binXML []byte) []byte {
	chunk := make([]byte, evtxChunkSize)
	copy(chunk, "ElfChnk\x00")
	binary.LittleEndian.PutUint64(chunk[8:], 1)  // first record number
	binary.LittleEndian.PutUint64(chunk[16:], 1) // last record number

	const record = 0x200
	size := evtxRecordHeaderSize + len(binXML) + 4
	copy(chunk[record:], "**\x00\x00")
	binary.LittleEndian.PutUint32(chunk[record+4:], uint32(size))
	binary.LittleEndian.PutUint64(chunk[record+8:], 1)
	copy(chunk[record+evtxRecordHeaderSize:], binXML)
	return chunk
}

// fanOut returns levels of instances of template 7, each with width BinXml
// values of size zero. The parser parses each value again from the same
// offset, where the next level starts, so the work is width to the power
// of levels.
func fanOut(width, levels int) []byte {
	empty := make([]value, width)
	for i := range empty {
		empty[i] = binXMLValue(nil)
	}

	var next []byte
	for range levels - 1 {
		next = append(useTemplate(7, empty...), next...)
	}
	first := defineTemplate(7, emptyBody, uint32(width))
	for range width {
		first = append(first, 0, 0, kindBinXML, 0)
	}
	return append(first, next...)
}

// emptyNameAt is a chunk offset in the zeroed string table of
// chunkWithRecord, where the parser reads an empty name.
const emptyNameAt = 0x100

// nestedElements returns a template body of depth elements inside each
// other, each holding one text value. The walk bounds the work of expanding
// a tree by its nodes times its depth, because the parser copies the keys of
// elements named "" into their parents at every level. At this depth the
// bound passes the limit.
func nestedElements(depth int) []byte {
	var b []byte
	for range depth {
		b = append(b, 0x01, 0, 0)                  // element start, dependency id
		b = binary.LittleEndian.AppendUint32(b, 0) // element size
		b = binary.LittleEndian.AppendUint32(b, emptyNameAt)
		b = append(b, 0x02)          // close start
		b = append(b, 0x05, 1, 0, 0) // empty text value
	}
	for range depth {
		b = append(b, 0x04)
	}
	return append(b, 0x00)
}

func TestSafeChunk(t *testing.T) {
	t.Parallel()

	const fourBillion = 0xffffffff
	tests := []struct {
		name   string
		binXML []byte
		safe   bool
	}{
		{
			name:   "no value",
			binXML: defineTemplate(7, emptyBody, 0),
			safe:   true,
		},
		{
			name:   "count of four billion",
			binXML: defineTemplate(7, emptyBody, fourBillion),
		},
		{
			// The parser reads zeros past the chunk's end, which costs
			// little.
			name:   "count past the chunk end",
			binXML: defineTemplate(7, emptyBody, 0x4000),
			safe:   true,
		},
		{
			name: "nested instance with a sane count",
			binXML: defineTemplate(7, emptyBody, 1,
				binXMLValue(defineTemplate(8, emptyBody, 0))),
			safe: true,
		},
		{
			name: "nested instance with a count of four billion",
			binXML: defineTemplate(7, emptyBody, 1,
				binXMLValue(defineTemplate(8, emptyBody, fourBillion))),
		},
		{
			name:   "instance in a template body with a count of four billion",
			binXML: defineTemplate(7, append(defineTemplate(8, emptyBody, fourBillion), 0x00), 0),
		},
		{
			name:   "instance in a template body with a sane count",
			binXML: defineTemplate(7, append(defineTemplate(8, emptyBody, 2), 0x00), 0),
			safe:   true,
		},
		{
			name:   "BinXml values three wide and three deep",
			binXML: fanOut(3, 3),
			safe:   true,
		},
		{
			name:   "BinXml values a thousand wide and three deep",
			binXML: fanOut(1000, 3),
		},
		{
			name:   "ten elements inside each other",
			binXML: defineTemplate(7, nestedElements(10), 0),
			safe:   true,
		},
		{
			name:   "3,000 elements inside each other",
			binXML: defineTemplate(7, nestedElements(3000), 0),
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			chunk := chunkWithRecord(tt.binXML)
			work, safe := parserWork(chunk)
			require.Equal(t, tt.safe, safe, "work %d", work)
			require.Positive(t, work)
		})
	}

	// A record of size 0 makes the parser read the same record again until
	// it has kept 10,241 records. It keeps no record whose number is
	// negative as an int, so with such a number it never stops.
	for _, tt := range []struct {
		name     string
		recordID uint64
		safe     bool
	}{
		{name: "record of size 0", recordID: 1, safe: true},
		{name: "record of size 0 with a negative number", recordID: 0xeaeaeaeaeaea0001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			chunk := chunkWithRecord(defineTemplate(7, emptyBody, 0))
			binary.LittleEndian.PutUint64(chunk[16:], math.MaxUint64) // last record number
			binary.LittleEndian.PutUint32(chunk[0x200+4:], 0)
			binary.LittleEndian.PutUint64(chunk[0x200+8:], tt.recordID)
			work, safe := parserWork(chunk)
			require.Equal(t, tt.safe, safe, "work %d", work)
		})
	}

	t.Run("not a chunk", func(t *testing.T) {
		t.Parallel()

		require.True(t, safeChunk(make([]byte, evtxChunkSize)))
	})
}

// TestParserVersionModelled fails when go.mod requires another version of
// the parser, or replaces it, since the walk follows its code.
func TestParserVersionModelled(t *testing.T) {
	t.Parallel()

	goMod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)

	const parser = "www.velocidex.com/golang/evtx"
	var required []string
	for line := range strings.Lines(string(goMod)) {
		fields := strings.Fields(line)
		if slices.Contains(fields, parser) {
			require.NotContains(t, fields, "=>", "a replaced parser is not the one parserWork follows")
			required = append(required, strings.Join(fields, " "))
		}
	}
	require.Equal(t, []string{parser + " " + modelledParserVersion}, required,
		"the .evtx parser changed: check parserWork against its code, run FuzzParseEvtxChunk, then update modelledParserVersion")
}

// TestParserWorkOfRecordings checks that no chunk of the real .evtx
// recordings comes near the work limit.
func TestParserWorkOfRecordings(t *testing.T) {
	t.Parallel()

	for _, recording := range []string{testrecordings.MeterpreterPsExecEVTX, testrecordings.UnquotedServiceEVTX, testrecordings.BenignSysmonEVTX} {
		content, err := os.ReadFile(testrecordings.Path(t, recording))
		require.NoError(t, err)

		maxWork := 0
		for offset := evtxHeaderSize; offset+evtxChunkSize <= len(content); offset += evtxChunkSize {
			work, safe := parserWork(content[offset : offset+evtxChunkSize])
			require.True(t, safe, "%s: chunk at %d", recording, offset)
			maxWork = max(maxWork, work)
		}
		require.Positive(t, maxWork, recording)
		require.Less(t, maxWork, maxParserWork/10, "%s: the limit should leave a margin of ten", recording)
	}
}

// TestLoadEvtxParserPanic checks that a chunk on which the parser panics
// is counted, and the chunks after it still load.
func TestLoadEvtxParserPanic(t *testing.T) {
	t.Parallel()

	content, err := os.ReadFile(testrecordings.Path(t, testrecordings.MeterpreterPsExecEVTX))
	require.NoError(t, err)
	good, err := Load(t.Context(), bytes.NewReader(content), "good.evtx", Options{})
	require.NoError(t, err)
	require.NotEmpty(t, good.Rows)

	// A SYSTEMTIME value whose descriptor claims 65,535 bytes runs past
	// the chunk's end, and the parser slices past its buffer.
	binXML := defineTemplate(7, emptyBody, 1, value{kind: kindSystemTime, data: make([]byte, 16)})
	binary.LittleEndian.PutUint16(binXML[len(binXML)-20:], 0xffff)
	panicking := chunkWithRecord(binXML)
	require.True(t, safeChunk(panicking))
	require.Panics(t, func() {
		chunk, err := evtx.NewChunk(bytes.NewReader(panicking), 0)
		require.NoError(t, err)
		_, _ = chunk.Parse(0)
	}, "the parser no longer panics on this chunk; pick another")

	file := append(bytes.Clone(content[:evtxHeaderSize]), panicking...)
	file = append(file, content[evtxHeaderSize:]...)
	b, err := Load(t.Context(), bytes.NewReader(file), "panic.evtx", Options{})
	require.NoError(t, err)
	require.Equal(t, 1, b.Skipped[SkipEvtxChunk])
	require.Len(t, b.Rows, len(good.Rows), "the real chunk after it still loads")
}

// parserAllocLimit is the allocation FuzzParseEvtxChunk allows the parser
// for one chunk within maxParserWork: 64 bytes per unit of work.
const parserAllocLimit = 64 * maxParserWork

// FuzzParseEvtxChunk parses one chunk, padded to 64 KiB, whenever safeChunk
// passes it, and fails when the parser allocates more than
// parserAllocLimit. A chunk that makes the parser run away without a
// bound fails by the fuzzer's time-out.
func FuzzParseEvtxChunk(f *testing.F) {
	if content := testrecordings.SeedFile(f, testrecordings.MeterpreterPsExecEVTX, 0); len(content) >= evtxHeaderSize+evtxChunkSize {
		f.Add(bytes.TrimRight(content[evtxHeaderSize:evtxHeaderSize+evtxChunkSize], "\x00"))
	}
	f.Add(bytes.TrimRight(chunkWithRecord(fanOut(3, 3)), "\x00"))
	f.Add(bytes.TrimRight(chunkWithRecord(defineTemplate(7, append(defineTemplate(8, emptyBody, 2), 0x00), 0)), "\x00"))

	f.Fuzz(func(t *testing.T, data []byte) {
		chunk := make([]byte, evtxChunkSize)
		copy(chunk, data)
		if !safeChunk(chunk) {
			return
		}

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		parsed, err := evtx.NewChunk(bytes.NewReader(chunk), 0)
		if err == nil {
			func() {
				defer func() { _ = recover() }()
				_, _ = parsed.Parse(0)
			}()
		}
		runtime.ReadMemStats(&after)

		allocated := after.TotalAlloc - before.TotalAlloc
		require.LessOrEqual(t, allocated, uint64(parserAllocLimit), "the parser allocated %d bytes on a chunk safeChunk passed", allocated)
	})
}
