package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// member is one key of a JSON object with its undecoded value.
type member struct {
	name  string
	value json.RawMessage
}

// object is a JSON object with its keys in document order. Order matters
// because osquery writes EventData in the event's own order, and keeping it
// lets two renderings of one event compare equal byte for byte.
type object []member

var errNotObject = errors.New("not a JSON object")

// decodeObject parses one JSON object and keeps its key order. A repeated key
// keeps its first position and its last value, as encoding/json keeps the
// last value. The text is validated by encoding/json first; the member scan
// after it relies on that and only finds where each value ends.
func decodeObject(text []byte) (object, error) {
	if !json.Valid(text) {
		var v any
		if err := json.Unmarshal(text, &v); err != nil {
			return nil, err
		}
		return nil, errors.New("invalid JSON")
	}

	i := skipSpace(text, 0)
	if text[i] != '{' {
		return nil, errNotObject
	}
	i++

	obj := make(object, 0, 32)
	for {
		i = skipSpace(text, i)
		if text[i] == '}' {
			break
		}
		if text[i] == ',' {
			i = skipSpace(text, i+1)
		}

		keyEnd := endOfString(text, i)
		key := unquote(text[i:keyEnd])
		i = skipSpace(text, keyEnd) + 1 // the ':'
		i = skipSpace(text, i)

		valueEnd := endOfValue(text, i)
		value := json.RawMessage(text[i:valueEnd])
		i = valueEnd

		if at := obj.index(key); at >= 0 {
			obj[at].value = value
			continue
		}
		obj = append(obj, member{name: key, value: value})
	}
	return obj, nil
}

func skipSpace(text []byte, i int) int {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the closing quote of the string that
// starts at text[i].
func endOfString(text []byte, i int) int {
	for j := i + 1; j < len(text); j++ {
		switch text[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(text)
}

// endOfValue returns the index after the JSON value that starts at text[i].
func endOfValue(text []byte, i int) int {
	switch text[i] {
	case '"':
		return endOfString(text, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(text); j++ {
			switch text[j] {
			case '"':
				j = endOfString(text, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(text)
	default:
		j := i
		for j < len(text) && !strings.ContainsRune(",}] \t\r\n", rune(text[j])) {
			j++
		}
		return j
	}
}

// unquote decodes a valid JSON string literal, quotes included. Like
// encoding/json, it replaces each byte that is not valid UTF-8 with U+FFFD,
// because osquery's own rows, converted from Windows' UTF-16, are valid
// UTF-8.
func unquote(quoted []byte) string {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}

	var sb strings.Builder
	sb.Grow(len(inner))
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(inner[i:])
			if r == utf8.RuneError && size == 1 {
				sb.WriteRune(utf8.RuneError)
			} else {
				sb.Write(inner[i : i+size])
			}
			i += size - 1
			continue
		}
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		i++
		switch inner[i] {
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r := hex4(inner[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) && i+6 < len(inner) && inner[i+1] == '\\' && inner[i+2] == 'u' {
				if pair := utf16.DecodeRune(r, hex4(inner[i+3:i+7])); pair != utf8.RuneError {
					r = pair
					i += 6
				}
			}
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
			sb.WriteRune(r)
		default: // '"', '\\' and '/' stand for themselves
			sb.WriteByte(inner[i])
		}
	}
	return sb.String()
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		}
	}
	return r
}

func (o object) index(name string) int {
	for i, m := range o {
		if m.name == name {
			return i
		}
	}
	return -1
}

// get returns the raw value of a key.
func (o object) get(name string) (json.RawMessage, bool) {
	if i := o.index(name); i >= 0 {
		return o[i].value, true
	}
	return nil, false
}

// text returns a key's value as text (see valueText), and whether the key
// exists with a non-null value.
func (o object) text(name string) (string, bool) {
	raw, ok := o.get(name)
	if !ok || isNull(raw) {
		return "", false
	}
	return valueText(raw), true
}

// child returns a key's value decoded as an object.
func (o object) child(name string) (object, bool) {
	raw, ok := o.get(name)
	if !ok || len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, false
	}
	return obj, true
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || raw[0] == 'n'
}

// valueText converts a JSON value into the string osquery would store for
// it: a string as is, a number as written (so 64-bit values keep every digit),
// a boolean as "true" or "false", null as "", and an array or object as its
// compact JSON text.
func valueText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}

	switch raw[0] {
	case '"':
		return unquote(raw)
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return ""
	case '[', '{':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return string(raw)
		}
		return buf.String()
	default:
		return string(raw)
	}
}
