package output

import (
	"bufio"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// ellipsis marks a value cut to fit its column.
const ellipsis = "…"

// minCellWidth is the narrowest a column is shrunk to before the table
// switches to one block per row; narrower columns show too little to read.
const minCellWidth = 8

// writeTable writes rows as osqueryi's boxed table when it fits in
// maxWidth cells, shrinking the widest columns first and cutting their values
// with an ellipsis. When even the narrowest layout would not fit (the 21
// columns of remote_service_launches do not fit in 120 cells), it writes one
// block per row with one "column = value" line per column, as osqueryi's
// line mode does. An empty result writes nothing, as in osqueryi.
func writeTable(w io.Writer, columns []string, rows []map[string]string, maxWidth int) error {
	if len(rows) == 0 {
		return nil
	}

	headers := make([]string, len(columns))
	for i, name := range columns {
		headers[i] = EscapeText(name)
	}
	cells := make([][]string, len(rows))
	for r, row := range rows {
		cells[r] = make([]string, len(columns))
		for c, name := range columns {
			cells[r][c] = EscapeText(row[name])
		}
	}

	bw := bufio.NewWriter(w)
	if widths, ok := fitColumns(headers, cells, maxWidth); ok {
		writeBoxed(bw, headers, cells, widths)
	} else {
		writeBlocks(bw, headers, cells, maxWidth)
	}
	return flush(bw)
}

// fitColumns returns each column's width so that the boxed table fits in
// maxWidth cells, or false when it cannot fit with every column at least as
// wide as its header and minCellWidth (or its widest value, if narrower).
func fitColumns(headers []string, cells [][]string, maxWidth int) ([]int, bool) {
	widths := make([]int, len(headers))
	floors := make([]int, len(headers))
	for c, header := range headers {
		widths[c] = displayWidth(header)
		for _, row := range cells {
			widths[c] = max(widths[c], displayWidth(row[c]))
		}
		floors[c] = min(widths[c], max(displayWidth(header), minCellWidth))
	}

	// "| " before each column, " " after it and the closing "|".
	total := 3*len(headers) + 1
	for _, wd := range widths {
		total += wd
	}

	for total > maxWidth {
		widest := -1
		for c := range widths {
			if widths[c] > floors[c] && (widest < 0 || widths[c] > widths[widest]) {
				widest = c
			}
		}
		if widest < 0 {
			return nil, false
		}
		widths[widest]--
		total--
	}
	return widths, true
}

// writeBoxed writes the table with +---+ rules as osqueryi prints it.
func writeBoxed(bw *bufio.Writer, headers []string, cells [][]string, widths []int) {
	rule := func() {
		for _, wd := range widths {
			bw.WriteString("+")
			bw.WriteString(strings.Repeat("-", wd+2))
		}
		bw.WriteString("+\n")
	}
	line := func(values []string) {
		for c, value := range values {
			bw.WriteString("| ")
			writePadded(bw, value, widths[c])
			bw.WriteString(" ")
		}
		bw.WriteString("|\n")
	}

	rule()
	line(headers)
	rule()
	for _, row := range cells {
		line(row)
	}
	rule()
}

// writeBlocks writes one block per row, with a blank line between rows. Each
// line is the column name right-aligned, " = " and the value cut to the
// remaining width.
func writeBlocks(bw *bufio.Writer, headers []string, cells [][]string, maxWidth int) {
	nameWidth := 0
	for _, header := range headers {
		nameWidth = max(nameWidth, displayWidth(header))
	}
	valueWidth := max(maxWidth-nameWidth-3, minCellWidth)

	for r, row := range cells {
		if r > 0 {
			bw.WriteString("\n")
		}
		for c, value := range row {
			bw.WriteString(strings.Repeat(" ", nameWidth-displayWidth(headers[c])))
			bw.WriteString(headers[c])
			bw.WriteString(" =")
			if value != "" {
				bw.WriteString(" ")
				bw.WriteString(cut(value, valueWidth))
			}
			bw.WriteString("\n")
		}
	}
}

// writePadded writes value cut to wd cells and padded with spaces to wd.
func writePadded(bw *bufio.Writer, value string, wd int) {
	value = cut(value, wd)
	bw.WriteString(value)
	bw.WriteString(strings.Repeat(" ", max(wd-displayWidth(value), 0)))
}

// cut returns value unchanged when it fits in wd cells, and otherwise its
// longest prefix that fits in wd-1 cells followed by an ellipsis.
func cut(value string, wd int) string {
	if displayWidth(value) <= wd {
		return value
	}

	used := 0
	for i, r := range value {
		rw := runeWidth(r)
		if used+rw > wd-1 {
			return value[:i] + ellipsis
		}
		used += rw
	}
	return value
}

// displayWidth returns the number of terminal cells s takes.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// runeWidth returns the number of terminal cells r takes: two for East Asian
// wide and fullwidth characters, none for combining marks, one otherwise.
// Values reach it after EscapeText, so control characters do not occur.
//
// NOTE: emoji presentation sequences and ambiguous-width characters are
// counted as one cell, so rows holding them can be misaligned.
func runeWidth(r rune) int {
	if r == utf8.RuneError {
		return 1
	}
	if unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}
