package output

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// writeCSV writes a header row and one record per row, RFC 4180 style: CRLF
// line ends, fields quoted when they contain a comma, quote or line break.
func writeCSV(w io.Writer, columns []string, rows []map[string]string) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true

	record := make([]string, len(columns))
	for i, name := range columns {
		record[i] = csvCell(name)
	}
	if err := cw.Write(record); err != nil {
		return fmt.Errorf("writing CSV header: %w", err)
	}

	for _, row := range rows {
		for i, name := range columns {
			record[i] = csvCell(row[name])
		}
		if err := cw.Write(record); err != nil {
			return fmt.Errorf("writing CSV row: %w", err)
		}
	}

	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

// csvCell neutralises one value for spreadsheets. A cell that starts with
// =, +, -, @, tab or CR is read as a formula by Excel, LibreOffice and Google
// Sheets, so it gets a leading apostrophe, which they show as text (the
// OWASP "CSV injection" advice). Plain decimal numbers such as -1 are left
// alone because they cannot run anything. Control characters are then
// escaped as in the table format.
func csvCell(value string) string {
	if formulaStart(value) && !isNumber(value) {
		value = "'" + value
	}
	return EscapeText(value)
}

// formulaStart reports whether a spreadsheet would parse value as a formula.
func formulaStart(value string) bool {
	if value == "" {
		return false
	}
	switch value[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// isNumber reports whether value is a plain decimal number, such as osquery
// writes for integer and floating-point columns.
func isNumber(value string) bool {
	if _, err := strconv.ParseInt(value, 10, 64); err == nil {
		return true
	}
	_, err := strconv.ParseFloat(value, 64)
	return err == nil && !hasLetter(value)
}

// hasLetter reports whether value holds an ASCII letter; ParseFloat accepts
// "Inf", "NaN" and hexadecimal forms, which are not what osquery writes.
func hasLetter(value string) bool {
	for i := 0; i < len(value); i++ {
		c := value[i] | 0x20
		if c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}
