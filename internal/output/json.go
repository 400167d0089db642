package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// writeJSON writes rows as one JSON array of objects. Keys keep the column
// order, which encoding/json's map encoding would sort away.
func writeJSON(w io.Writer, columns []string, rows []map[string]string) error {
	bw := bufio.NewWriter(w)

	bw.WriteString("[")
	for i, row := range rows {
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n  ")
		if err := appendObject(bw, columns, row); err != nil {
			return err
		}
	}
	if len(rows) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")

	return flush(bw)
}

// writeNDJSON writes one JSON object per row, each on its own line.
func writeNDJSON(w io.Writer, columns []string, rows []map[string]string) error {
	bw := bufio.NewWriter(w)
	for _, row := range rows {
		if err := appendObject(bw, columns, row); err != nil {
			return err
		}
		bw.WriteString("\n")
	}
	return flush(bw)
}

// appendObject writes one row as a JSON object with every value a string,
// as osquery's own JSON output has them.
func appendObject(bw *bufio.Writer, columns []string, row map[string]string) error {
	bw.WriteString("{")
	for i, name := range columns {
		if i > 0 {
			bw.WriteString(",")
		}
		if err := appendString(bw, name); err != nil {
			return err
		}
		bw.WriteString(":")
		if err := appendString(bw, row[name]); err != nil {
			return err
		}
	}
	bw.WriteString("}")
	return nil
}

// appendString writes s as a JSON string. encoding/json escapes C0 controls,
// quotes, backslashes and U+2028/U+2029, and replaces invalid UTF-8 with
// U+FFFD. HTML escaping is off so that "&" and "<" in command lines stay
// readable. escapeUnsafe then escapes DEL, C1 controls and format
// characters, which encoding/json leaves raw but a terminal would act on.
func appendString(bw *bufio.Writer, s string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("encoding value as JSON: %w", err)
	}

	encoded := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	bw.Write(escapeUnsafe(encoded))
	return nil
}

// escapeUnsafe replaces every character of encoded (valid UTF-8 JSON text,
// as encoding/json produces) that needsEscape reports with a \uNNNN escape,
// using a surrogate pair above U+FFFF. Such characters can only occur inside
// strings, because JSON's structure is ASCII, so the result is still valid
// JSON and decodes to the same value.
func escapeUnsafe(encoded []byte) []byte {
	if !hasUnsafe(string(encoded)) {
		return encoded
	}

	out := make([]byte, 0, len(encoded)+16)
	for i := 0; i < len(encoded); {
		r, size := utf8.DecodeRune(encoded[i:])
		switch {
		case r < 0x80 && r != 0x7f:
			// encoding/json already escaped the ASCII controls.
			out = append(out, encoded[i])
		case !needsEscape(r):
			out = append(out, encoded[i:i+size]...)
		case r > 0xFFFF:
			high, low := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, high, low)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}

// flush writes out the buffer and wraps a write error with what was being
// written.
func flush(bw *bufio.Writer) error {
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}
