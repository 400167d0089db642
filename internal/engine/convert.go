package engine

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// toSQLiteValue converts one row value, which osquery always carries as a
// string, to the value osquery hands SQLite for a column of the given type.
// It follows DynamicTableRow::get_column (osquery/sql/dynamic_table_row.cpp):
//   - TEXT and BLOB are passed as text;
//   - INTEGER, BIGINT and UNSIGNED BIGINT are parsed like std::stol/stoll
//     with base 0, so "0x294" is 660, "010" is 8, "12abc" is 12, and an
//     empty or non-numeric string is NULL;
//   - DOUBLE is parsed like strtod and must use the whole string, or it is
//     NULL.
//
// A missing value (ok false) is NULL for every type.
func toSQLiteValue(sqlType, value string, ok bool) any {
	if !ok {
		return nil
	}
	switch sqlType {
	case "TEXT", "BLOB":
		return value
	case "INTEGER":
		n, ok := parseCInteger(value)
		// osquery stores INTEGER through a C long and sqlite3_result_int.
		// NOTE: a value outside the 32-bit range becomes NULL here, as with
		// osqueryd on Windows, whose long is 32 bits wide. On Linux and
		// macOS osqueryd truncates it to 32 bits instead.
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			return nil
		}
		return n
	case "BIGINT", "UNSIGNED BIGINT":
		n, ok := parseCInteger(value)
		if !ok {
			return nil
		}
		return n
	case "DOUBLE":
		f, ok := parseCDouble(value)
		if !ok {
			return nil
		}
		return f
	}

	// osquery logs an error for an unknown column type and leaves the
	// result unset, which SQLite reads as NULL.
	return nil
}

// parseCInteger parses s the way std::stoll(s, &pos, 0) does when pos is
// not checked afterwards, as osquery's tryTo does. Leading white space and a
// sign are skipped, "0x" selects base 16 and a leading "0" base 8. Parsing
// stops at the first character that is not a digit of the base. It fails
// when no digit is read or the value does not fit in 64 bits.
func parseCInteger(s string) (int64, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	negative := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		negative = s[i] == '-'
		i++
	}

	base := uint64(10)
	switch {
	case i+2 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && hexDigit(s[i+2]) >= 0:
		base = 16
		i += 2
	case i < len(s) && s[i] == '0':
		base = 8
	}

	var n uint64
	digits := 0
	for ; i < len(s); i++ {
		d := hexDigit(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		if n > (math.MaxUint64-uint64(d))/base {
			return 0, false
		}
		n = n*base + uint64(d)
		digits++
	}
	if digits == 0 {
		return 0, false
	}

	if negative {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// parseCDouble parses s like strtod and requires the whole string to be
// used, as DynamicTableRow::get_column does. Leading white space is skipped.
func parseCDouble(s string) (float64, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	if s == "" || strings.ContainsRune(s, '_') {
		return 0, false
	}

	// strtod reads hexadecimal floats without a binary exponent ("0x1A"),
	// which ParseFloat rejects.
	unsigned := strings.TrimLeft(s, "+-")
	if len(unsigned) > 2 && (unsigned[:2] == "0x" || unsigned[:2] == "0X") && !strings.ContainsAny(unsigned, "pP") {
		s += "p0"
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// strtod returns ±HUGE_VAL on overflow and the whole string is
		// still consumed, so osquery keeps the value.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// formatResult renders one result value as osquery's extension API returns
// it: readRows (osquery/sql/sqlite_util.cpp) keeps integers, doubles and
// text, NULL becomes "" (the default --nullvalue), and castVariant
// (osquery/utils/conversions/castvariant.h) prints the result.
func formatResult(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatDouble(v)
	case string:
		return cutAtNUL(v)
	case []byte:
		return cutAtNUL(string(v))
	case bool:
		if v {
			return "1"
		}
		return "0"
	case time.Time:
		// The driver returns time.Time only for columns declared DATE,
		// DATETIME or TIMESTAMP, which no osquery table declares.
		// NOTE: the layout is the driver's default text form, not
		// necessarily the text that was stored.
		return v.Format("2006-01-02 15:04:05.999999999-07:00")
	}
	return ""
}

// formatDouble prints a double as castVariant does: an ostream with
// precision 15 (the %g style), with ".0" appended when the text has no
// decimal point, so 1e+20 becomes "1e+20.0" and 3 becomes "3.0".
func formatDouble(f float64) string {
	var s string
	switch {
	case math.IsInf(f, 1):
		s = "inf"
	case math.IsInf(f, -1):
		s = "-inf"
	case math.IsNaN(f):
		s = "nan"
	default:
		s = strconv.FormatFloat(f, 'g', 15, 64)
	}
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// cutAtNUL drops everything from the first NUL byte, because osquery copies
// result text through a C string.
func cutAtNUL(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// sqliteText renders a constraint value as sqlite3_value_text does, which is
// how osquery's xFilter reads every constraint expression. A REAL uses the
// "%!.15g" format of SQLite 3.42, the version osquery bundles
// (libraries/third_party_libraries_manifest.json), which keeps a decimal
// point ("5.0", "1.0e+20"). The driver's newer SQLite prints up to 17
// digits instead.
func sqliteText(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return sqliteRealText(v), true
	case string:
		return cutAtNUL(v), true
	case []byte:
		return cutAtNUL(string(v)), true
	case bool:
		if v {
			return "1", true
		}
		return "0", true
	case time.Time:
		return v.Format("2006-01-02 15:04:05.999999999-07:00"), true
	}
	return "", false
}

func sqliteRealText(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	s := strconv.FormatFloat(f, 'g', 15, 64)
	mantissa, exponent, hasExponent := strings.Cut(s, "e")
	if !strings.Contains(mantissa, ".") {
		mantissa += ".0"
	}
	if hasExponent {
		return mantissa + "e" + exponent
	}
	return mantissa
}
