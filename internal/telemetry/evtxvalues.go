package telemetry

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// This file reads the substitution values of .evtx records directly, because
// the Velocidex parser hands them on without their types. The layout is the
// one that parser's ParseTemplateInstance reads. Each record is a template
// instance, and its System values are substitutions of that outer template.
// Manifest-based providers put EventData into one more template instance,
// carried as a BinXml (0x21) substitution, with one value per <Data> element
// in order. The .evtx recordings in the tests confirm this for Sysmon.

// Substitution value types, as the Velocidex parser numbers them; 0x80
// marks an array of the type.
const (
	valueNull       = 0x00
	valueString     = 0x01
	valueANSIString = 0x02
	valueInt8       = 0x03
	valueUInt8      = 0x04
	valueInt16      = 0x05
	valueUInt16     = 0x06
	valueInt32      = 0x07
	valueUInt32     = 0x08
	valueInt64      = 0x09
	valueUInt64     = 0x0a
	valueReal32     = 0x0b
	valueReal64     = 0x0c
	valueBool       = 0x0d
	valueBinary     = 0x0e
	valueGUID       = 0x0f
	valueSizeT      = 0x10
	valueFileTime   = 0x11
	valueSystemTime = 0x12
	valueSID        = 0x13
	valueHexInt32   = 0x14
	valueHexInt64   = 0x15
	valueBinXML     = 0x21
	valueArray      = 0x80
)

var le = binary.LittleEndian

// substitution is one typed substitution value, rendered as Windows renders
// it in event XML.
type substitution struct {
	kind byte
	text string
}

// recordSubstitutions are the values of one record that the loader needs.
type recordSubstitutions struct {
	// filetimes are the outer template's FILETIME values; TimeCreated is
	// one of them.
	filetimes []uint64
	// eventData are the values of the first nested template instance, in
	// order, or nil when the record has none.
	eventData []substitution
}

// rawValue is an undecoded substitution value and where it sits in the chunk.
type rawValue struct {
	kind   byte
	data   []byte
	offset int
}

// chunkRecordValues reads the substitution values of every record of one
// 64 KiB chunk, by record id. A record whose values cannot be read is left
// out, and the caller falls back to the parser's values for it.
func chunkRecordValues(chunk []byte) map[uint64]*recordSubstitutions {
	out := map[uint64]*recordSubstitutions{}
	if len(chunk) < evtxChunkSize || string(chunk[:8]) != evtxChunkMagic {
		return out
	}

	for offset, size := range chunkRecords(chunk) {
		id := le.Uint64(chunk[offset+8:])
		if values, ok := readRecordValues(chunk, offset+24, offset+size); ok {
			out[id] = values
		}
	}
	return out
}

// chunkRecords yields the offset and size of each record of a 64 KiB chunk.
// Records follow the 512-byte chunk header back to back: a 24-byte header
// ("**\0\0", size, record id, written time), then BinXml, then the size
// again. The walk stops at the first header without the magic or with a
// size that does not fit.
func chunkRecords(chunk []byte) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for offset := 0x200; offset+evtxRecordHeaderSize <= len(chunk); {
			if string(chunk[offset:offset+4]) != "**\x00\x00" {
				return
			}
			size := int(le.Uint32(chunk[offset+4:]))
			if size < evtxRecordHeaderSize+4 || offset+size > len(chunk) {
				return
			}
			if !yield(offset, size) {
				return
			}
			offset += size
		}
	}
}

// chunkRecordCount returns the number of records chunkRecords finds.
func chunkRecordCount(chunk []byte) int {
	n := 0
	for range chunkRecords(chunk) {
		n++
	}
	return n
}

func readRecordValues(chunk []byte, start, end int) (*recordSubstitutions, bool) {
	outer, ok := templateValues(chunk, start, end)
	if !ok {
		return nil, false
	}

	values := &recordSubstitutions{}
	for _, v := range outer {
		switch v.kind {
		case valueFileTime:
			if len(v.data) == 8 {
				values.filetimes = append(values.filetimes, le.Uint64(v.data))
			}
		case valueBinXML:
			if values.eventData != nil {
				continue
			}
			nested, ok := templateValues(chunk, v.offset, v.offset+len(v.data))
			if !ok {
				continue
			}
			values.eventData = make([]substitution, len(nested))
			for i, n := range nested {
				values.eventData[i] = substitution{kind: n.kind, text: renderValue(n.kind, n.data)}
			}
		}
	}
	return values, true
}

// templateValues reads the substitution values of the template instance at
// chunk[p:end]. The instance is an optional fragment header, the instance
// token with the template id and definition offset, and the definition
// itself when it follows inline. Then come the value count, one (size, type)
// descriptor per value, and the values.
func templateValues(chunk []byte, p, end int) ([]rawValue, bool) {
	if end > len(chunk) || p >= end {
		return nil, false
	}
	if chunk[p] == 0x0f {
		p += 4
	}
	if p+10 > end || chunk[p] != 0x0c {
		return nil, false
	}
	p += 2 + 4 // token, version byte, template id

	definition := int(le.Uint32(chunk[p:]))
	p += 4
	if definition == p {
		// Inline definition: next offset (4), GUID (16), size (4), body.
		if p+24 > end {
			return nil, false
		}
		p += 24 + int(le.Uint32(chunk[p+20:]))
	}

	if p+4 > end {
		return nil, false
	}
	count := int(le.Uint32(chunk[p:]))
	p += 4
	if count > 4096 || p+4*count > end {
		return nil, false
	}

	values := make([]rawValue, count)
	data := p + 4*count
	for i := range values {
		size := int(le.Uint16(chunk[p:]))
		kind := chunk[p+2]
		p += 4
		if data+size > end {
			return nil, false
		}
		values[i] = rawValue{kind: kind, data: chunk[data : data+size], offset: data}
		data += size
	}
	return values, true
}

// renderValue renders a substitution value as Windows does in event XML.
// Integers are decimal and hex types are "0x" with lower-case digits and no
// padding. Booleans are true or false, and GUIDs are lower case in braces.
// Binary is upper-case hex, and SIDs read S-1-....
func renderValue(kind byte, data []byte) string {
	if kind&valueArray != 0 {
		return renderArray(kind&^valueArray, data)
	}

	switch kind {
	case valueNull:
		return ""
	case valueString:
		return utf16Text(data)
	case valueANSIString:
		return strings.TrimRight(string(data), "\x00")
	case valueBinary:
		return strings.ToUpper(fmt.Sprintf("%x", data))
	case valueGUID:
		if len(data) != 16 {
			break
		}
		return fmt.Sprintf("{%08x-%04x-%04x-%x-%x}", le.Uint32(data), le.Uint16(data[4:]), le.Uint16(data[6:]), data[8:10], data[10:16])
	case valueFileTime:
		if len(data) != 8 {
			break
		}
		return filetimeToTime(le.Uint64(data)).Format(datetimeFraction)
	case valueSystemTime:
		if len(data) != 16 {
			break
		}
		t := time.Date(int(le.Uint16(data)), time.Month(le.Uint16(data[2:])), int(le.Uint16(data[6:])),
			int(le.Uint16(data[8:])), int(le.Uint16(data[10:])), int(le.Uint16(data[12:])),
			int(le.Uint16(data[14:]))*int(time.Millisecond), time.UTC)
		return t.Format(datetimeFraction)
	case valueSID:
		return sidText(data)
	case valueBool:
		return strconv.FormatBool(unsignedValue(data) != 0)
	case valueHexInt32, valueHexInt64, valueSizeT:
		return "0x" + strconv.FormatUint(unsignedValue(data), 16)
	case valueInt8, valueInt16, valueInt32, valueInt64:
		return strconv.FormatInt(signedValue(data), 10)
	case valueUInt8, valueUInt16, valueUInt32, valueUInt64:
		return strconv.FormatUint(unsignedValue(data), 10)
	case valueReal32:
		if len(data) == 4 {
			return strconv.FormatFloat(float64(math.Float32frombits(le.Uint32(data))), 'g', -1, 32)
		}
	case valueReal64:
		if len(data) == 8 {
			return strconv.FormatFloat(math.Float64frombits(le.Uint64(data)), 'g', -1, 64)
		}
	case valueBinXML:
		// Nested XML inside a <Data> element is rare; osquery would
		// write its text content, which this loader does not extract.
		return ""
	}
	return strings.ToUpper(fmt.Sprintf("%x", data))
}

// renderArray renders an array value as its items joined by commas.
// NOTE: array values are rare in EventData and this form is not checked
// against Windows' rendering.
func renderArray(kind byte, data []byte) string {
	if kind == valueString {
		items := strings.Split(strings.TrimRight(utf16Text(data), "\x00"), "\x00")
		return strings.Join(items, ",")
	}

	size := map[byte]int{
		valueInt8: 1, valueUInt8: 1, valueInt16: 2, valueUInt16: 2, valueInt32: 4, valueUInt32: 4,
		valueInt64: 8, valueUInt64: 8, valueHexInt32: 4, valueHexInt64: 8, valueGUID: 16, valueFileTime: 8,
		valueSystemTime: 16, valueBool: 4,
	}[kind]
	if size == 0 {
		return strings.ToUpper(fmt.Sprintf("%x", data))
	}

	items := make([]string, 0, len(data)/size)
	for i := 0; i+size <= len(data); i += size {
		items = append(items, renderValue(kind, data[i:i+size]))
	}
	return strings.Join(items, ",")
}

func utf16Text(data []byte) string {
	units := make([]uint16, len(data)/2)
	for i := range units {
		units[i] = le.Uint16(data[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(units)), "\x00")
}

func unsignedValue(data []byte) uint64 {
	switch len(data) {
	case 1:
		return uint64(data[0])
	case 2:
		return uint64(le.Uint16(data))
	case 4:
		return uint64(le.Uint32(data))
	case 8:
		return le.Uint64(data)
	}
	return 0
}

func signedValue(data []byte) int64 {
	switch len(data) {
	case 1:
		return int64(int8(data[0]))
	case 2:
		return int64(int16(le.Uint16(data)))
	case 4:
		return int64(int32(le.Uint32(data)))
	case 8:
		return int64(le.Uint64(data))
	}
	return 0
}

// sidText renders a binary SID: revision, sub-authority count, a 48-bit
// big-endian authority, then 32-bit little-endian sub-authorities.
func sidText(data []byte) string {
	if len(data) < 8 {
		return ""
	}
	var authority uint64
	for _, b := range data[2:8] {
		authority = authority<<8 | uint64(b)
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", data[0], authority)
	count := int(data[1])
	for i := 0; i < count && 8+4*i+4 <= len(data); i++ {
		fmt.Fprintf(&sb, "-%d", le.Uint32(data[8+4*i:]))
	}
	return sb.String()
}

// FILETIME counts 100 ns ticks since 1601-01-01 UTC.
const filetimeUnixEpoch = 116444736000000000

func filetimeToTime(ft uint64) time.Time {
	ticks := int64(ft) - filetimeUnixEpoch
	return time.Unix(ticks/1e7, (ticks%1e7)*100).UTC()
}

// filetimeSeconds converts a FILETIME to Unix seconds the way the Velocidex
// parser does, so that the two can be matched.
func filetimeSeconds(ft uint64) float64 {
	return (float64(ft) - 11644473600000*10000) / 10000000
}
