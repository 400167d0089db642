// Package output writes query results (rows of strings keyed by column name,
// as osquery returns them) as an aligned table, a JSON array, newline-
// delimited JSON or CSV.
//
// Values come from recorded telemetry, whose command lines and paths an
// attacker may have chosen. Every format therefore neutralises
// control characters: the table and CSV writers replace them with visible
// escapes such as \x1b, and the JSON writers escape them in JSON's own
// \u syntax so that a decoder gets the exact value back.
package output

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Format names an output format as the --format flag spells it.
type Format string

// Output formats.
const (
	// FormatTable is an aligned table for people; long values are cut.
	FormatTable Format = "table"
	// FormatJSON is one JSON array of objects keyed by column name.
	FormatJSON Format = "json"
	// FormatNDJSON is one JSON object per line.
	FormatNDJSON Format = "ndjson"
	// FormatCSV is RFC 4180 CSV with a header row and CRLF line ends.
	FormatCSV Format = "csv"
)

// Formats lists every format in the order help text shows them.
var Formats = []Format{FormatTable, FormatJSON, FormatNDJSON, FormatCSV}

// ParseFormat returns the Format named by s.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Formats, f) {
		return f, nil
	}

	names := make([]string, len(Formats))
	for i, known := range Formats {
		names[i] = string(known)
	}
	return "", fmt.Errorf("unknown output format %q: use one of %s", s, strings.Join(names, ", "))
}

// DefaultWidth is the table width used when the output is not a terminal or
// its size cannot be read.
const DefaultWidth = 120

// Options tunes the writers.
type Options struct {
	// Width is the table's maximum line width in terminal cells; 0 means
	// DefaultWidth. Other formats ignore it.
	Width int
}

// Write writes rows in the given format. columns fixes the column order;
// when it is empty the columns are the union of the rows' keys, sorted. A key
// missing from a row is written as an empty value, as osquery writes NULL.
func Write(w io.Writer, format Format, columns []string, rows []map[string]string, opts Options) error {
	if len(columns) == 0 {
		columns = ColumnsOf(rows)
	}

	switch format {
	case FormatTable:
		width := opts.Width
		if width <= 0 {
			width = DefaultWidth
		}
		return writeTable(w, columns, rows, width)
	case FormatJSON:
		return writeJSON(w, columns, rows)
	case FormatNDJSON:
		return writeNDJSON(w, columns, rows)
	case FormatCSV:
		return writeCSV(w, columns, rows)
	default:
		return fmt.Errorf("unknown output format %q", format)
	}
}

// ColumnsOf returns the sorted union of the rows' keys. Callers that know the
// real column order (a table's schema, a statement's result columns) should
// pass it to Write instead, because maps do not keep it.
func ColumnsOf(rows []map[string]string) []string {
	seen := make(map[string]bool)
	var columns []string
	for _, row := range rows {
		for name := range row {
			if !seen[name] {
				seen[name] = true
				columns = append(columns, name)
			}
		}
	}
	slices.Sort(columns)
	return columns
}
