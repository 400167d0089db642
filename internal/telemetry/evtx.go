package telemetry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/Velocidex/ordereddict"
	"www.velocidex.com/golang/evtx"
)

// evtxMagic starts every .evtx file, and evtxChunkMagic every chunk.
const (
	evtxMagic      = "ElfFile\x00"
	evtxChunkMagic = "ElfChnk\x00"
)

// Sizes of the .evtx file header and of one chunk; records never cross
// chunks.
const (
	evtxHeaderSize = 0x1000
	evtxChunkSize  = 0x10000
)

// loadEvtx reads a Windows .evtx file with the Velocidex parser. The file is
// read into memory because the parser seeks and the input may be a gzip
// stream.
//
// The parser keeps the event's structure but drops two things osquery has:
// TimeCreated becomes a float64 (about 2 µs steps) and hex, GUID and boolean
// values lose their type. The loader therefore also reads each record's
// substitution values itself (see recordValues) and takes TimeCreated's
// exact FILETIME and the EventData values, rendered as Windows renders them,
// from there.
func loadEvtx(ctx context.Context, r *bufio.Reader, name string, opts Options) (*Batch, error) {
	content, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}

	// A file is a 4 KiB header followed by whole chunks.
	if len(content) < evtxHeaderSize {
		return nil, fmt.Errorf("reading %s: the .evtx file is truncated: it has %d bytes, fewer than the %d-byte file header", name, len(content), evtxHeaderSize)
	}
	if _, err := evtx.GetChunks(bytes.NewReader(content[:evtxHeaderSize])); err != nil {
		return nil, fmt.Errorf("reading %s: invalid .evtx file: %w", name, err)
	}

	b := newBatch(FormatEvtx)
	var events []winEvent
	var newest uint64
	slots := 0
	for offset := evtxHeaderSize; offset < len(content); offset += evtxChunkSize {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("loading %s: %w", name, err)
		}

		slots++
		end := min(offset+evtxChunkSize, len(content))
		var loaded []winEvent
		var last uint64
		if end-offset < evtxChunkSize {
			loaded, last = loadCutEvtxChunk(b, content[offset:end])
		} else {
			loaded, last = loadEvtxChunk(b, content[offset:end])
		}
		events = append(events, loaded...)
		newest = max(newest, last)
	}
	countUnreadEvtxRecords(b, content[:evtxHeaderSize], slots, newest)

	addWindowsEvents(b, events, opts)
	return b, nil
}

// countUnreadEvtxRecords counts the records that a closed file's header
// says the file holds but that were neither read nor counted already: a
// file cut at a chunk boundary, or one whose later chunks moved because
// bytes were inserted. The header of a file that was not closed is stale
// and is not used.
//
// NOTE: the records counted before are subtracted whatever their numbers,
// so when earlier chunks lost records too, the count here is a lower bound.
func countUnreadEvtxRecords(b *Batch, header []byte, slots int, newest uint64) {
	const dirtyFlag = 1
	if crc32.ChecksumIEEE(header[:120]) != le.Uint32(header[124:]) || le.Uint32(header[120:])&dirtyFlag != 0 {
		return
	}
	chunks := int(le.Uint16(header[42:]))

	// The header's next record number gives the records after the newest
	// one read. Each chunk the file lacks counts as one at least.
	unread := max(chunks-slots, 0)
	if next := le.Uint64(header[24:]); next > newest+1 && next-newest-1 <= uint64(max(chunks, slots)*maxChunkRecords) {
		unread = max(unread, int(next-newest-1))
	}
	counted := b.Skipped[SkipEvtxRecord] + b.Skipped[SkipEvtxChunk] + b.Skipped[SkipEvtxCut]
	if extra := unread - counted; extra > 0 {
		b.Skipped[SkipEvtxUnread] += extra
	}
}

// maxChunkRecords is the most records a chunk can hold: the space after its
// header divided by the smallest record.
const maxChunkRecords = (evtxChunkSize - 0x200) / (evtxRecordHeaderSize + 4)

// declaredRecords returns the number of records a chunk header declares,
// from its first and last record numbers, and false when that number is
// not plausible.
func declaredRecords(chunk []byte) (int, bool) {
	first, last := le.Uint64(chunk[8:]), le.Uint64(chunk[16:])
	if first > last || last-first >= maxChunkRecords {
		return 0, false
	}
	return int(last - first + 1), true
}

// loadEvtxChunk parses one 64 KiB chunk and returns its events and the
// highest record number read. Records it cannot read are counted.
//
// The file header's chunk count is stale in files that were not closed, so
// every chunk slot is read. A slot without the chunk magic is unused, with
// zeros or stale bytes, unless records follow its header: those are
// counted. The records expected are those the walk finds or, when more,
// those the chunk header declares, as a damaged record header ends the
// walk. Those the parser does not return are counted.
func loadEvtxChunk(b *Batch, chunkBytes []byte) ([]winEvent, uint64) {
	present := chunkRecordCount(chunkBytes)
	if string(chunkBytes[:8]) != evtxChunkMagic {
		if present > 0 {
			b.Skipped[SkipEvtxChunk] += present
		}
		return nil, 0
	}

	expected := present
	declared, plausible := declaredRecords(chunkBytes)
	if plausible {
		expected = max(expected, declared)
	}

	// The parser reads as many records as the chunk header declares. When
	// that is fewer than the walk finds, the numbers are damaged: a copy
	// gets numbers that cover every record found.
	parsed := chunkBytes
	if present > 0 && (!plausible || declared < present) {
		parsed = bytes.Clone(chunkBytes)
		binary.LittleEndian.PutUint64(parsed[8:], 1)
		binary.LittleEndian.PutUint64(parsed[16:], uint64(present))
	}

	records, ok := parseEvtxChunk(parsed)
	if !ok {
		b.Skipped[SkipEvtxChunk] += max(expected, 1)
		return nil, 0
	}
	if missing := expected - len(records); missing > 0 {
		b.Skipped[SkipEvtxRecord] += missing
	}
	return decodeEvtxRecords(b, chunkBytes, records, evtxChecksumsMatch(chunkBytes))
}

// loadCutEvtxChunk loads the whole records of the cut-off last chunk of a
// file, and counts the record the cut runs through and, from the chunk
// header's record numbers when they are plausible, those after it.
func loadCutEvtxChunk(b *Batch, partial []byte) ([]winEvent, uint64) {
	// Zeros, or stale bytes that do not start as a chunk does, are the
	// unused end of a file.
	magic := partial[:min(len(partial), len(evtxChunkMagic))]
	if len(bytes.Trim(partial, "\x00")) == 0 || string(magic) != evtxChunkMagic[:len(magic)] {
		return nil, 0
	}

	// The chunk is padded with zeros and cut again at the first record
	// that runs past the end, so that the parser stops before it rather
	// than read zeros as its values.
	chunkBytes := make([]byte, evtxChunkSize)
	copy(chunkBytes, partial)
	crossed := false
	for offset, size := range chunkRecords(chunkBytes) {
		if offset+size > len(partial) {
			clear(chunkBytes[offset:])
			crossed = true
			break
		}
	}

	var records []*evtx.EventRecord
	if string(chunkBytes[:8]) == evtxChunkMagic {
		records, _ = parseEvtxChunk(chunkBytes)
	}

	// Without plausible record numbers the loss is unknown, and counted as
	// one record.
	missing := 1
	if len(partial) >= 24 {
		if declared, ok := declaredRecords(chunkBytes); ok {
			missing = max(declared-len(records), 0)
		}
	}
	if crossed {
		missing = max(missing, 1)
	}
	if missing > 0 {
		b.Skipped[SkipEvtxCut] += missing
	}

	// The checksums cover the bytes that were cut, so they are not checked.
	return decodeEvtxRecords(b, chunkBytes, records, true)
}

// parseEvtxChunk parses a chunk's records when the walk in safeChunk finds
// the parser's work bounded, and reports false when it does not or the
// parser fails. The parser indexes its buffer with sizes read from the
// chunk, and some of them make it panic, such as an array or SYSTEMTIME
// value that runs past the chunk's end. Such a panic counts as a failure.
func parseEvtxChunk(chunkBytes []byte) (records []*evtx.EventRecord, ok bool) {
	if !safeChunk(chunkBytes) {
		return nil, false
	}
	defer func() {
		if recover() != nil {
			records, ok = nil, false
		}
	}()

	chunk, err := evtx.NewChunk(bytes.NewReader(chunkBytes), 0)
	if err != nil {
		return nil, false
	}
	records, err = chunk.Parse(0)
	return records, err == nil
}

// decodeEvtxRecords converts a chunk's parsed records to events, counting
// those it skips and those read with less fidelity. It also returns the
// highest record number among them.
func decodeEvtxRecords(b *Batch, chunkBytes []byte, records []*evtx.EventRecord, intact bool) ([]winEvent, uint64) {
	exact := chunkRecordValues(chunkBytes)

	var events []winEvent
	var newest uint64
	for _, record := range records {
		newest = max(newest, record.Header.RecordID)
		values := exact[record.Header.RecordID]
		if values == nil {
			b.Notes[NoteEvtxParsedValues]++
		}
		ev, reason := decodeEvtxRecord(record, values)
		if reason != "" {
			b.skip(reason)
			continue
		}
		if ev.userData {
			b.Notes[NoteUserDataFlattened]++
		}
		if !intact {
			b.Notes[NoteEvtxChecksum]++
		}
		events = append(events, ev)
	}
	return events, newest
}

// evtxChecksumsMatch reports whether a chunk's CRC32 checksums match: the
// header's, over its first 120 bytes and bytes 128 to 512, and the records',
// over the bytes from 512 to the free space offset.
func evtxChecksumsMatch(chunk []byte) bool {
	free := int(le.Uint32(chunk[48:]))
	if free < 0x200 || free > len(chunk) {
		return false
	}
	header := crc32.Update(crc32.ChecksumIEEE(chunk[:120]), crc32.IEEETable, chunk[128:0x200])
	return header == le.Uint32(chunk[124:]) && crc32.ChecksumIEEE(chunk[0x200:free]) == le.Uint32(chunk[52:])
}

// decodeEvtxRecord converts one parsed record. values are the record's own
// substitution values, or nil when they could not be read.
func decodeEvtxRecord(record *evtx.EventRecord, values *recordSubstitutions) (winEvent, string) {
	root, ok := record.Event.(*ordereddict.Dict)
	if !ok {
		return winEvent{}, SkipEvtxRecord
	}
	event, ok := dictAt(root, "Event")
	if !ok {
		return winEvent{}, SkipEvtxRecord
	}
	system, ok := dictAt(event, "System")
	if !ok {
		return winEvent{}, SkipEvtxRecord
	}

	var ev winEvent
	if provider, ok := dictAt(system, "Provider"); ok {
		ev.provider = textOf(provider, "Name")
		ev.providerGUID = guidText(textOf(provider, "Guid"))
	}
	ev.eventID = textOf(system, "EventID")
	if eventID, ok := dictAt(system, "EventID"); ok {
		ev.eventID = textOf(eventID, "Value")
	}
	ev.channel = textOf(system, "Channel")
	ev.computer = textOf(system, "Computer")
	ev.task = textOf(system, "Task")
	ev.level = textOf(system, "Level")
	if keywords, ok := system.Get("Keywords"); ok {
		if n, ok := keywords.(uint64); ok {
			ev.keywords = "0x" + strconv.FormatUint(n, 16)
		} else {
			ev.keywords = renderParsed(keywords)
		}
	}

	if created, ok := evtxTimeCreated(system, values); ok {
		ev.created = utcStamp(created, true)
	}

	if reason := checkEvent(&ev); reason != "" {
		return winEvent{}, reason
	}

	var exact []substitution
	if values != nil {
		exact = values.eventData
	}
	if data, ok := event.Get("EventData"); ok {
		ev.data = evtxEventData(data, exact)
	} else if data, ok := event.Get("UserData"); ok {
		ev.data = evtxUserData(data)
		ev.userData = true
	}
	return ev, ""
}

// evtxTimeCreated returns TimeCreated/@SystemTime. The exact value is the
// record's FILETIME substitution that the parser's float64 came from. When no
// substitution matches, the float64 is rounded to the nearest 100 ns.
func evtxTimeCreated(system *ordereddict.Dict, values *recordSubstitutions) (time.Time, bool) {
	timeCreated, ok := dictAt(system, "TimeCreated")
	if !ok {
		return time.Time{}, false
	}
	raw, ok := timeCreated.Get("SystemTime")
	if !ok {
		return time.Time{}, false
	}
	seconds, ok := raw.(float64)
	if !ok || math.IsNaN(seconds) || seconds < firstDatetimeSecond || seconds >= endDatetimeSecond {
		return time.Time{}, false
	}

	if values != nil {
		for _, ft := range values.filetimes {
			if math.Abs(filetimeSeconds(ft)-seconds) < 1e-5 {
				return filetimeToTime(ft), true
			}
		}
	}

	whole, frac := math.Modf(seconds)
	ticks := int64(math.Round(frac * 1e7))
	return time.Unix(int64(whole), ticks*100).UTC(), true
}

// The Unix seconds of the times windows_events.datetime can hold: a FILETIME
// starts in 1601, and the column's year has four digits. A damaged record's
// FILETIME can reach the year 60056, and such a record is skipped as one
// without a valid time.
var (
	firstDatetimeSecond = float64(time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	endDatetimeSecond   = float64(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
)

// evtxEventData returns the EventData fields. Names and order come from the
// parsed event. Values come from the record's own substitutions when there is
// one per <Data> element, which is how manifest-based providers (Sysmon,
// Security) write events; otherwise from the parsed values.
func evtxEventData(data any, exact []substitution) []dataField {
	var fields []dataField

	switch data := data.(type) {
	case *ordereddict.Dict:
		items, isArray := data.Get("Data")
		if !isArray || data.Len() != 1 {
			// The parser normalised <Data Name="X"> elements into a
			// dictionary of names to values.
			for _, name := range data.Keys() {
				value, _ := data.Get(name)
				fields = append(fields, dataField{name: name, value: renderParsed(value)})
			}
			break
		}
		fields = dataItems(items)
	default:
		fields = dataItems(data)
	}

	if len(exact) == len(fields) {
		for i := range fields {
			fields[i].value = exact[i].text
		}
	}
	return fields
}

// dataItems converts <Data> elements that the parser left unnormalised: a
// list (or a single item) of {"Name":..., "Value":...} dictionaries, whose
// Value is missing for an empty element, or bare values for elements
// without a Name.
func dataItems(items any) []dataField {
	list, ok := items.([]any)
	if !ok {
		list = []any{items}
	}

	fields := make([]dataField, 0, len(list))
	for _, item := range list {
		dict, ok := item.(*ordereddict.Dict)
		if !ok {
			fields = append(fields, dataField{value: renderParsed(item)})
			continue
		}
		name := textOf(dict, "Name")
		value, _ := dict.Get("Value")
		fields = append(fields, dataField{name: name, value: renderParsed(value)})
	}
	return fields
}

// evtxUserData flattens UserData's single child element into fields.
// NOTE: osquery writes UserData's nested elements as nested JSON objects;
// this loader keeps only the first level below the child element.
func evtxUserData(data any) []dataField {
	dict, ok := data.(*ordereddict.Dict)
	if !ok {
		return nil
	}

	var fields []dataField
	for _, key := range dict.Keys() {
		child, _ := dict.Get(key)
		inner, ok := child.(*ordereddict.Dict)
		if !ok {
			fields = append(fields, dataField{name: key, value: renderParsed(child)})
			continue
		}
		for _, name := range inner.Keys() {
			value, _ := inner.Get(name)
			fields = append(fields, dataField{name: name, value: renderParsed(value)})
		}
	}
	return fields
}

func dictAt(d *ordereddict.Dict, key string) (*ordereddict.Dict, bool) {
	value, ok := d.Get(key)
	if !ok {
		return nil, false
	}
	child, ok := value.(*ordereddict.Dict)
	return child, ok
}

func textOf(d *ordereddict.Dict, key string) string {
	value, ok := d.Get(key)
	if !ok {
		return ""
	}
	return renderParsed(value)
}

// renderParsed renders a value of the Velocidex parser as text. It is the
// fallback when the record's own typed values are unavailable, so hex
// values come out in decimal there.
func renderParsed(value any) string {
	switch v := value.(type) {
	case nil:
		return ""
	case string:
		return guidText(v)
	case bool:
		return strconv.FormatBool(v)
	case []byte:
		return strings.ToUpper(fmt.Sprintf("%x", v))
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case []string:
		return strings.Join(v, ",")
	case *ordereddict.Dict:
		out, err := v.MarshalJSON()
		if err != nil {
			return ""
		}
		return string(out)
	default:
		return fmt.Sprint(v)
	}
}

// guidText renders a GUID as Windows writes it in event XML, lower case in
// braces. The parser writes GUID values upper case without braces; any other
// text is returned unchanged.
func guidText(s string) string {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return s
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '-' && (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return s
		}
	}
	return "{" + strings.ToLower(s) + "}"
}
