package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// eventData holds the EventData values of an event in the order written.
// Names are matched exactly: a forwarder's header field `ProcessID` must not
// stand in for Sysmon's own `ProcessId`.
type eventData []dataField

// dataField is one EventData value. A value with JSON escapes is kept as
// written and unescaped when read, because most fields of an event are never
// read.
type dataField struct {
	name, value string
	escaped     bool
}

// get returns a field's value with surrounding space removed, or "" when the
// field is missing. A repeated name returns its last value, as
// encoding/json does.
func (d eventData) get(name string) string {
	return strings.TrimSpace(d.raw(name))
}

// raw returns a field's value without trimming.
func (d eventData) raw(name string) string {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].name != name {
			continue
		}
		if d[i].escaped {
			return unescapeJSON(d[i].value)
		}
		return d[i].value
	}
	return ""
}

// errNoEventData marks data that is valid JSON without an EventData object.
var errNoEventData = errors.New("data has no EventData object")

// parseEventData decodes osquery's windows_events data column,
// `{"EventData":{"Name":"value",...}}`. osquery writes every value as a
// string, which a scanner reads without copying values. In BenchmarkDecode
// on a 2-vCPU AMD EPYC VM, 50,000 Sysmon rows took 2.6 to 4 s with
// encoding/json and 0.33 to 0.37 s with the scanner. Anything else (numbers, nested objects, other top-level keys, invalid
// JSON) goes through encoding/json. The fields are appended to buf[:0], so
// that a caller decoding many rows can reuse one buffer.
func parseEventData(data string, buf eventData) (eventData, error) {
	if fields, ok := scanEventData(data, buf[:0]); ok {
		return fields, nil
	}
	return decodeEventData(data)
}

// decodeEventData is the general decoder. Numbers and booleans are
// converted to text, and null values are left out as if the field were
// missing.
func decodeEventData(data string) (eventData, error) {
	var envelope map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &envelope); err != nil {
		return nil, fmt.Errorf("decoding data: %w", err)
	}

	raw, ok := envelope["EventData"]
	if !ok || len(raw) == 0 || raw[0] != '{' {
		// An array means the event's <Data> elements had no Name
		// attributes, so no field can be found by name.
		return nil, errNoEventData
	}

	// A token stream keeps the fields in the order written, which decides
	// between repeated names.
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	if _, err := decoder.Token(); err != nil {
		return nil, fmt.Errorf("decoding EventData: %w", err)
	}

	var out eventData
	for decoder.More() {
		key, err := decoder.Token()
		if err != nil {
			return nil, fmt.Errorf("decoding EventData: %w", err)
		}
		var value any
		if err := decoder.Decode(&value); err != nil {
			return nil, fmt.Errorf("decoding EventData: %w", err)
		}

		name, _ := key.(string)
		switch v := value.(type) {
		case string:
			out = append(out, dataField{name: name, value: v})
		case json.Number:
			out = append(out, dataField{name: name, value: v.String()})
		case bool:
			out = append(out, dataField{name: name, value: strconv.FormatBool(v)})
		}
	}
	return out, nil
}

// scanEventData reads the common form `{"EventData":{"k":"v",...}}` with
// string values only. It reports false for anything else, and the caller
// then uses encoding/json, which also reports invalid JSON and replaces
// invalid UTF-8.
func scanEventData(data string, fields eventData) (eventData, bool) {
	if !utf8.ValidString(data) {
		return nil, false
	}
	s := jsonScanner{data: data}
	if !s.consume('{') {
		return nil, false
	}
	key, escaped, ok := s.string()
	if !ok || escaped || key != "EventData" || !s.consume(':') || !s.consume('{') {
		return nil, false
	}

	if !s.consume('}') {
		for {
			name, nameEscaped, ok := s.string()
			if !ok || !s.consume(':') {
				return nil, false
			}
			if nameEscaped {
				name = unescapeJSON(name)
			}
			value, escaped, ok := s.string()
			if !ok {
				return nil, false
			}
			fields = append(fields, dataField{name: name, value: value, escaped: escaped})

			if s.consume(',') {
				continue
			}
			if s.consume('}') {
				break
			}
			return nil, false
		}
	}

	if !s.consume('}') {
		return nil, false
	}
	s.skipSpace()
	return fields, s.pos == len(s.data)
}

// jsonScanner reads JSON tokens from a string.
type jsonScanner struct {
	data string
	pos  int
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// consume skips space and then c, reporting whether c was there.
func (s *jsonScanner) consume(c byte) bool {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// string reads a JSON string and returns its text between the quotes as a
// substring of the input, reporting whether it contains escapes, which are
// checked here and decoded by unescapeJSON.
func (s *jsonScanner) string() (value string, escaped, ok bool) {
	if !s.consume('"') {
		return "", false, false
	}

	start := s.pos
	for {
		end := strings.IndexByte(s.data[s.pos:], '"')
		if end < 0 {
			return "", false, false
		}

		backslash := strings.IndexByte(s.data[s.pos:s.pos+end], '\\')
		plain := end
		if backslash >= 0 {
			plain = backslash
		}
		// JSON requires control characters in strings to be escaped, so
		// a raw one is invalid and left to encoding/json to reject.
		if hasControl(s.data[s.pos : s.pos+plain]) {
			return "", false, false
		}
		if backslash < 0 {
			s.pos += end + 1
			return s.data[start : s.pos-1], escaped, true
		}

		// Step over the escape, which may be an escaped quote.
		length := escapeLength(s.data[s.pos+backslash:])
		if length == 0 {
			return "", false, false
		}
		escaped = true
		s.pos += backslash + length
	}
}

// hasControl reports whether text contains a byte below 0x20.
func hasControl(text string) bool {
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 {
			return true
		}
	}
	return false
}

// escapeLength returns the length of the JSON escape sequence at the start
// of text, or 0 when it is not a valid one.
func escapeLength(text string) int {
	if len(text) < 2 {
		return 0
	}
	switch text[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(text) < 6 {
			return 0
		}
		if _, err := strconv.ParseUint(text[2:6], 16, 32); err != nil {
			return 0
		}
		return 6
	}
	return 0
}

// unescapeJSON decodes the escapes of a JSON string's text that
// jsonScanner.string has checked.
func unescapeJSON(text string) string {
	var b strings.Builder
	b.Grow(len(text))

	for i := 0; i < len(text); {
		backslash := strings.IndexByte(text[i:], '\\')
		if backslash < 0 {
			b.WriteString(text[i:])
			break
		}
		b.WriteString(text[i : i+backslash])
		i += backslash

		switch text[i+1] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := hex4(text[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				// A surrogate pair is two escapes. A lone surrogate
				// becomes U+FFFD, as in encoding/json.
				if strings.HasPrefix(text[i:], `\u`) && len(text) >= i+6 {
					if pair := utf16.DecodeRune(r, hex4(text[i+2:i+6])); pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			b.WriteRune(r)
			continue
		default: // '"', '\\' and '/' stand for themselves.
			b.WriteByte(text[i+1])
		}
		i += 2
	}
	return b.String()
}

// hex4 returns the value of four hex digits that escapeLength has checked.
func hex4(digits string) rune {
	n, _ := strconv.ParseUint(digits, 16, 32)
	return rune(n)
}
