// Package telemetry loads recorded telemetry into osquery table rows, so that
// the detector can run over recordings exactly as it runs over osquery.
//
// Supported inputs, each optionally gzip-compressed (detected by its magic
// bytes). JSON lines may be UTF-8 or, with a byte order mark, UTF-16:
//
//   - NXLog JSON lines (im_msvistalog fields, as in the OTRF datasets);
//   - python-evtx JSON lines (flat objects with TimeCreated, Computer, ...);
//   - Winlogbeat and Elastic Agent ECS documents (winlog.*, @timestamp);
//   - osquery results logs (differential, snapshot and batch lines);
//   - Windows .evtx files, read with the Velocidex parser.
//
// The format is detected from the content: the .evtx magic, or else the keys
// of the first non-empty line. Options.Format overrides the detection.
//
// Windows events become windows_events rows as osquery stores them:
//
//   - datetime is the event's TimeCreated in UTC. osquery copies Windows'
//     text, which has 7 fractional digits (100 ns). Sources with sub-second
//     digits use that form, padded with zeros (python-evtx's microseconds
//     gain one 0). Whole-second sources (NXLog's EventTime) are written
//     without a fraction, such as 2020-09-20T16:16:56Z, so that no digit is
//     invented;
//   - time is the receive time in Unix seconds: NXLog's EventReceivedTime,
//     ECS's event.created, and TimeCreated for layouts without one;
//   - data is {"EventData":{...}} in the event's order with every value a
//     string, escaped as osquery's Boost JSON writer escapes it. Header and
//     transport fields (NXLog's Message, Hostname, tags, ...) are left out.
//
// Zone-less local times (NXLog's EventTime and EventReceivedTime) are never
// read as UTC. The loader learns each host's UTC offset from Sysmon events,
// which carry UtcTime besides EventTime. Options.HostUTCOffsets and
// Options.UTCOffset replace learned offsets, and Options.DefaultUTCOffset
// places hosts whose offset cannot be learned. It records in Batch.Offsets
// how each host's offset was found, and skips and counts the events of hosts
// it cannot place.
//
// osquery's process_events, socket_events and processes tables have no host
// column, so Batch.Hosts gives the host of every row beside Batch.Rows.
package telemetry

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// Format names an input layout.
type Format string

// Formats that Load reads. FormatAuto detects the format from the content.
const (
	FormatAuto           Format = ""
	FormatNXLog          Format = "nxlog"
	FormatPythonEvtx     Format = "python-evtx"
	FormatECS            Format = "ecs"
	FormatOsqueryResults Format = "osquery-results"
	FormatEvtx           Format = "evtx"
)

// Formats returns every format Load accepts in Options.Format.
func Formats() []Format {
	return []Format{FormatNXLog, FormatPythonEvtx, FormatECS, FormatOsqueryResults, FormatEvtx}
}

// MaxLineBytes is the longest input line Load accepts. A longer line is
// skipped and counted under SkipLineTooLong; the rest of the file still loads.
const MaxLineBytes = 16 << 20

// Options tunes Load.
type Options struct {
	// Format forces the input format; FormatAuto detects it from the content.
	Format Format
	// UTCOffset, when set, is the offset of every host's zone-less local
	// times (local = UTC + offset; -4h for EDT). It replaces learned offsets.
	UTCOffset *time.Duration
	// DefaultUTCOffset, when set, is the offset of hosts whose offset can
	// be neither learned nor forced. A learned offset wins over it, and
	// OffsetInfo.Conflict records a default that disagrees.
	DefaultUTCOffset *time.Duration
	// HostUTCOffsets forces the offset of single hosts, by host name. A
	// name matches a host case-insensitively, or by its first DNS label
	// when no name matches exactly, because one computer writes both
	// "WORKSTATION6" and "WORKSTATION6.theshire.local". It replaces
	// learned offsets, and OffsetInfo.Conflict records a learned offset
	// that disagrees.
	HostUTCOffsets map[string]time.Duration
	// Table forces the osquery table of osquery results-log rows. When
	// empty, each row goes to the table whose columns it matches.
	Table string
}

// Offset methods recorded in OffsetInfo.Method.
const (
	OffsetLearned = "learned" // from events carrying both local and UTC times
	OffsetFlag    = "flag"    // from Options.HostUTCOffsets or Options.UTCOffset
	OffsetDefault = "default" // from Options.DefaultUTCOffset
	OffsetUnknown = "unknown" // no source; the host's local-time events were skipped
)

// OffsetInfo is the UTC offset of one host's zone-less local times and how
// the loader came by it.
type OffsetInfo struct {
	// Offset is local time minus UTC (-4h for a host on EDT).
	Offset time.Duration
	// Method is OffsetLearned, OffsetFlag, OffsetDefault or OffsetUnknown.
	Method string
	// Conflict, when not nil, is an offset that disagreed with Offset and
	// lost: the learned offset that a forced one replaced (Method
	// OffsetFlag), or Options.DefaultUTCOffset where the learned offset
	// was kept (Method OffsetLearned).
	Conflict *time.Duration
	// Events is the number of events that agree on the learned offset.
	Events int
	// Disagreeing is the number of events that suggested another offset.
	Disagreeing int
	// From names the host whose events taught the offset when it differs
	// from this host's name, such as "WORKSTATION6.theshire.local" for
	// "WORKSTATION6" (one computer writes both forms).
	From string
	// Skipped is the number of this host's events left out because their
	// local time could not be converted to UTC.
	Skipped int
}

// Batch is the result of loading one input.
type Batch struct {
	// Format is the format that was read.
	Format Format
	// Rows maps an osquery table name to its rows; each row maps a column
	// name to its value as osquery prints it. Columns the input cannot
	// supply are absent, so they read as NULL once inserted.
	Rows map[string][]map[string]string
	// Hosts maps a table name to the host of each row: Hosts[t][i] is the
	// host of Rows[t][i]. osquery's process_events, socket_events and
	// processes rows carry no host column, so a replay of a multi-host
	// results log splits rows by this slice (see HostRows). The host is the
	// event's computer name for Windows events, and the hostIdentifier (or
	// a hostname or computer_name decoration) for osquery results logs.
	Hosts map[string][]string
	// Skipped counts the events left out, by reason (the Skip* constants).
	Skipped map[string]int
	// SkippedLines gives, by reason, the input line numbers (counting from
	// 1) of the first MaxSkippedLines events left out for that reason.
	// Events of .evtx files have no line and are not listed.
	SkippedLines map[string][]int
	// Notes counts events loaded with less fidelity than osquery would
	// have, by reason (the Note* constants).
	Notes map[string]int
	// Offsets maps each host with zone-less local times to its offset.
	Offsets map[string]OffsetInfo
	// Clock is the newest `time` value loaded (Unix seconds), for the
	// osquery `time` table of a replay; 0 when no row has one.
	Clock int64

	// line is the number of the input line being decoded, for
	// SkippedLines; 0 when the event has no line.
	line int
}

// MaxSkippedLines is the number of line numbers that Batch.SkippedLines
// keeps per reason.
const MaxSkippedLines = 5

// Reasons for skipped events, the keys of Batch.Skipped.
const (
	SkipLineTooLong     = "line longer than 16 MiB"
	SkipMalformedJSON   = "malformed JSON"
	SkipNotObject       = "line is not a JSON object"
	SkipMissingEventID  = "missing or invalid event id"
	SkipMissingChannel  = "missing channel"
	SkipMissingTime     = "missing or invalid event time"
	SkipImplausibleTime = "event time outside 1990 to 2200"
	SkipUnknownOffset   = "local time without known UTC offset"
	SkipRemoved         = "osquery results-log row removed"
	SkipUnknownTable    = "columns match no known osquery table"
	SkipAmbiguousTable  = "columns match several osquery tables"
	SkipMissingColumns  = "osquery results-log line without rows"
	SkipEvtxRecord      = "unreadable .evtx record"
	SkipEvtxChunk       = "unreadable .evtx chunk"
	SkipEvtxCut         = "cut-off end of an .evtx file"
	SkipEvtxUnread      = ".evtx record the file header counts but the file lacks"
	SkipMissingComputer = "missing computer name"
	SkipMissingProvider = "missing provider name"
)

// Reasons for reduced fidelity, the keys of Batch.Notes.
const (
	// NoteEvtxParsedValues: the record's typed values could not be read,
	// so hex values are in decimal and TimeCreated is rounded from a
	// float64 (about 1 µs error).
	NoteEvtxParsedValues = ".evtx record read without its typed values"
	// NoteUserDataFlattened: UserData's nested elements were flattened.
	NoteUserDataFlattened = ".evtx UserData flattened to one level"
	// NoteEvtxChecksum: the chunk's CRC32 checksums do not match, so the
	// record may hold damaged values.
	NoteEvtxChecksum = ".evtx record from a chunk whose checksum does not match"
)

func newBatch(format Format) *Batch {
	return &Batch{
		Format:       format,
		Rows:         map[string][]map[string]string{},
		Hosts:        map[string][]string{},
		Skipped:      map[string]int{},
		SkippedLines: map[string][]int{},
		Notes:        map[string]int{},
		Offsets:      map[string]OffsetInfo{},
	}
}

func (b *Batch) add(table, host string, row map[string]string) {
	b.Rows[table] = append(b.Rows[table], row)
	b.Hosts[table] = append(b.Hosts[table], host)
}

// skip counts an event of the line being decoded as skipped for reason.
func (b *Batch) skip(reason string) {
	b.skipAt(reason, b.line)
}

// skipAt counts an event of input line lineNumber (0 when it has none) as
// skipped for reason.
func (b *Batch) skipAt(reason string, lineNumber int) {
	b.Skipped[reason]++
	if lineNumber > 0 && len(b.SkippedLines[reason]) < MaxSkippedLines {
		b.SkippedLines[reason] = append(b.SkippedLines[reason], lineNumber)
	}
}

// advanceClock moves Clock to the Unix time seconds when that is later and
// plausible. A row with an absurd time stays in the batch, where the
// table's sources skip and count it, but it moves no lookback.
func (b *Batch) advanceClock(seconds int64) {
	if seconds > b.Clock && seconds < detect.LatestEventTime.Unix() {
		b.Clock = seconds
	}
}

// HostRows returns the rows of one host, by table name, in load order.
func (b *Batch) HostRows(host string) map[string][]map[string]string {
	out := map[string][]map[string]string{}
	for table, hosts := range b.Hosts {
		for i, h := range hosts {
			if h == host {
				out[table] = append(out[table], b.Rows[table][i])
			}
		}
	}
	return out
}

// SkippedTotal returns the number of skipped events over all reasons.
func (b *Batch) SkippedTotal() int {
	total := 0
	for _, n := range b.Skipped {
		total += n
	}
	return total
}

// LoadFile opens path and loads it with Load.
func LoadFile(ctx context.Context, path string, opts Options) (*Batch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening telemetry file: %w", err)
	}
	defer f.Close()

	return Load(ctx, f, path, opts)
}

// Load reads one input and converts it into osquery rows. name labels the
// input in error messages. Gzip compression is detected from the magic bytes.
// The format comes from opts.Format, or from the content when that is empty:
// the .evtx magic, or else the keys of the first non-empty line.
//
// Load returns an error for an unreadable input, an unknown format, or a
// truncated file (a final line or gzip stream cut off before its end). The
// message names the input, the line and what was expected. A single
// malformed event inside an otherwise good input is skipped and counted in
// Batch.Skipped.
func Load(ctx context.Context, r io.Reader, name string, opts Options) (*Batch, error) {
	switch opts.Format {
	case FormatAuto, FormatNXLog, FormatPythonEvtx, FormatECS, FormatOsqueryResults, FormatEvtx:
	default:
		return nil, fmt.Errorf("loading %s: unknown format %q: use one of %v, or leave it empty to detect it", name, opts.Format, Formats())
	}

	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(8)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}

	// A gzip stream is unwrapped once; the format is then detected inside.
	if bytes.HasPrefix(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading %s: invalid gzip header: %w", name, err)
		}
		defer zr.Close()

		br = bufio.NewReaderSize(zr, 64<<10)
		magic, err = br.Peek(8)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading %s: decompressing gzip: %w", name, err)
		}
	}

	// Windows PowerShell 5.1 writes UTF-16LE with a byte order mark when
	// output is redirected with ">"; the BOM picks the byte order.
	if bytes.HasPrefix(magic, []byte{0xff, 0xfe}) || bytes.HasPrefix(magic, []byte{0xfe, 0xff}) {
		decoder := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder()
		br = bufio.NewReaderSize(transform.NewReader(br, decoder), 64<<10)
		magic, err = br.Peek(8)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading %s: decoding UTF-16: %w", name, err)
		}
	}

	if bytes.Equal(magic, []byte(evtxMagic)) {
		if opts.Format != FormatAuto && opts.Format != FormatEvtx {
			return nil, fmt.Errorf("loading %s: the content is an .evtx file but the format %q was requested", name, opts.Format)
		}
		return loadEvtx(ctx, br, name, opts)
	}
	if opts.Format == FormatEvtx {
		return nil, fmt.Errorf("loading %s: format %q requested but the content does not start with the .evtx magic %q", name, FormatEvtx, evtxMagic)
	}

	return loadLines(ctx, br, name, opts)
}
