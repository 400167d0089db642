package telemetry

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// templateInstance returns a template instance at chunk offset at that
// defines an empty template inline, as a record's BinXml starts. It writes
// count as the value count, and then one descriptor and one BinXml value
// for each of values, so that count may claim more values than follow.
func templateInstance(at int, count uint32, values ...[]byte) []byte {
	var b []byte
	b = append(b, 0x0f, 0x01, 0x01, 0x00) // fragment header
	b = append(b, 0x0c, 0x01)             // instance token, version
	b = binary.LittleEndian.AppendUint32(b, 7)
	definition := at + len(b) + 4
	b = binary.LittleEndian.AppendUint32(b, uint32(definition))
	b = binary.LittleEndian.AppendUint32(b, 0) // next template offset
	b = append(b, make([]byte, 16)...)         // template GUID
	b = binary.LittleEndian.AppendUint32(b, 0) // body size
	b = binary.LittleEndian.AppendUint32(b, count)
	for _, v := range values {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, valueBinXML, 0)
	}
	for _, v := range values {
		b = append(b, v...)
	}
	return b
}

// oneValueHeader is the length of a template instance with one value, up
// to the value.
const oneValueHeader = 46

// chunkWithRecord returns a 64 KiB chunk holding one record whose BinXml is
// body(start), where start is the chunk offset of the BinXml.
func chunkWithRecord(body func(start int) []byte) []byte {
	chunk := make([]byte, evtxChunkSize)
	copy(chunk, "ElfChnk\x00")

	const record = 0x200
	binXML := body(record + 24)
	size := 24 + len(binXML) + 4
	copy(chunk[record:], "**\x00\x00")
	binary.LittleEndian.PutUint32(chunk[record+4:], uint32(size))
	binary.LittleEndian.PutUint64(chunk[record+8:], 1)
	copy(chunk[record+24:], binXML)
	return chunk
}

func TestSafeChunk(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		chunk []byte
		safe  bool
	}{
		{
			name:  "no value",
			chunk: chunkWithRecord(func(start int) []byte { return templateInstance(start, 0) }),
			safe:  true,
		},
		{
			name:  "count of four billion",
			chunk: chunkWithRecord(func(start int) []byte { return templateInstance(start, 0xffffffff) }),
		},
		{
			name:  "count past the chunk end",
			chunk: chunkWithRecord(func(start int) []byte { return templateInstance(start, 0x4000) }),
		},
		{
			name: "nested instance with a sane count",
			chunk: chunkWithRecord(func(start int) []byte {
				return templateInstance(start, 1, templateInstance(start+oneValueHeader, 0))
			}),
			safe: true,
		},
		{
			name: "nested instance with a count of four billion",
			chunk: chunkWithRecord(func(start int) []byte {
				return templateInstance(start, 1, templateInstance(start+oneValueHeader, 0xffffffff))
			}),
		},
		{
			name:  "not a chunk",
			chunk: make([]byte, evtxChunkSize),
			safe:  true,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.safe, safeChunk(tt.chunk))
		})
	}
}
