package telemetry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// lineReader reads lines of at most max bytes without holding a longer line
// in memory: the bytes past the cap are read and dropped.
type lineReader struct {
	r      *bufio.Reader
	max    int
	number int // number of the line last returned, counting from 1
	buf    []byte
}

// line is one input line without its terminator.
type line struct {
	text []byte
	// terminated is false for a final line that ends without '\n'.
	terminated bool
	// tooLong marks a line over the cap; text is then empty.
	tooLong bool
}

func newLineReader(r *bufio.Reader, max int) *lineReader {
	return &lineReader{r: r, max: max}
}

// next returns the next line, or io.EOF after the last one.
func (lr *lineReader) next() (line, error) {
	lr.buf = lr.buf[:0]
	var out line
	read := 0

	for {
		chunk, err := lr.r.ReadSlice('\n')
		read += len(chunk)
		if !out.tooLong {
			if len(lr.buf)+len(chunk) > lr.max+2 { // +2 leaves room for "\r\n"
				out.tooLong = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}

		if err == nil {
			out.terminated = true
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if read == 0 {
				return line{}, io.EOF
			}
			break
		}
		return line{}, err
	}

	lr.number++
	out.text = bytes.TrimRight(lr.buf, "\r\n")
	return out, nil
}

// lineDecoder turns the JSON objects of one format into rows.
type lineDecoder interface {
	// decode handles one line's object; it adds rows to the batch or
	// buffers them until finish.
	decode(obj object, lineNumber int)
	// finish completes the batch after the last line.
	finish()
}

func newLineDecoder(format Format, b *Batch, opts Options) lineDecoder {
	switch format {
	case FormatNXLog:
		return newEventCollector(b, opts, decodeNXLog)
	case FormatPythonEvtx:
		return newEventCollector(b, opts, decodePythonEvtx)
	case FormatECS:
		return newEventCollector(b, opts, decodeECS)
	default:
		return newResultsDecoder(b, opts)
	}
}

const utf8BOM = "\xef\xbb\xbf"

// loadLines reads a JSON-lines input.
func loadLines(ctx context.Context, br *bufio.Reader, name string, opts Options) (*Batch, error) {
	lr := newLineReader(br, MaxLineBytes)
	b := newBatch(opts.Format)
	var dec lineDecoder

	for {
		if lr.number%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("loading %s: %w", name, err)
			}
		}

		ln, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("reading %s line %d: the gzip stream ends early, expected more compressed data; the file may be truncated: %w", name, lr.number+1, err)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s line %d: %w", name, lr.number+1, err)
		}

		b.line = lr.number
		if ln.tooLong {
			b.skip(SkipLineTooLong)
			continue
		}
		text := bytes.TrimSpace(ln.text)
		if lr.number == 1 {
			text = bytes.TrimPrefix(text, []byte(utf8BOM))
		}
		if len(text) == 0 {
			continue
		}

		obj, err := decodeObject(text)
		if err != nil && !ln.terminated {
			return nil, fmt.Errorf("reading %s line %d: the input ends inside this line (%v): expected a complete JSON object followed by a newline; the file may be truncated", name, lr.number, err)
		}

		if dec == nil {
			if errors.Is(err, errNotObject) {
				return nil, fmt.Errorf("unknown format: %s line %d is JSON but not an object: expected %s", name, lr.number, expectedLayouts)
			}
			if err != nil {
				return nil, fmt.Errorf("unknown format: %s line %d is not JSON (expected Windows event JSON lines, an osquery results log, or .evtx)", name, lr.number)
			}
			if b.Format == FormatAuto {
				format, ok := detectFormat(obj)
				if !ok {
					return nil, fmt.Errorf("reading %s line %d: unknown format: the keys %s match no layout; expected %s", name, lr.number, keyList(obj, 8), expectedLayouts)
				}
				b.Format = format
			}
			dec = newLineDecoder(b.Format, b, opts)
		}

		if err != nil {
			if errors.Is(err, errNotObject) {
				b.skip(SkipNotObject)
			} else {
				b.skip(SkipMalformedJSON)
			}
			continue
		}
		dec.decode(obj, lr.number)
	}

	if dec == nil {
		if b.SkippedTotal() > 0 {
			return nil, fmt.Errorf("reading %s: no line could be read (%v); expected %s", name, b.Skipped, expectedLayouts)
		}
		if b.Format == FormatAuto {
			b.Format = FormatNXLog
		}
		// An empty input is a valid, empty recording.
		return b, nil
	}
	// Events skipped in finish carry their own line numbers.
	b.line = 0
	dec.finish()
	return b, nil
}

const expectedLayouts = "JSON lines in NXLog (EventTime, Hostname), python-evtx (TimeCreated, Computer), ECS (winlog.*) or osquery results-log (name, columns or snapshot) layout, or an .evtx file"

// detectFormat recognises a layout from the keys of its first object.
func detectFormat(obj object) (Format, bool) {
	has := func(name string) bool { return obj.index(name) >= 0 }

	switch {
	case has("columns") || has("snapshot") || has("diffResults"):
		if has("name") || has("hostIdentifier") || has("unixTime") {
			return FormatOsqueryResults, true
		}
	case has("EventTime") && (has("SourceModuleType") || has("EventReceivedTime") || has("Hostname")):
		return FormatNXLog, true
	case has("TimeCreated") && has("Computer") && has("EventID"):
		return FormatPythonEvtx, true
	case has("winlog"):
		return FormatECS, true
	}

	for _, m := range obj {
		if strings.HasPrefix(m.name, "winlog.") {
			return FormatECS, true
		}
	}
	// Documents exported from Elasticsearch wrap the event in _source.
	if src, ok := obj.child("_source"); ok {
		if format, ok := detectFormat(src); ok && format == FormatECS {
			return format, true
		}
	}
	return "", false
}

// keyList renders up to limit keys of an object for an error message.
func keyList(obj object, limit int) string {
	names := make([]string, 0, limit)
	for i, m := range obj {
		if i == limit {
			names = append(names, "...")
			break
		}
		names = append(names, m.name)
	}
	return "[" + strings.Join(names, " ") + "]"
}
