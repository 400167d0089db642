// Package sqlliteral renders squirrel-built SQL into one statement with every
// argument written as an SQLite literal.
//
// osquery's extension API (the Thrift `query` call) takes one SQL string and
// binds no parameters, so the `?` placeholders that squirrel produces must be
// replaced by literals before a query leaves the process. squirrel's own
// DebugSqlizer does this without escaping and its documentation warns against
// using the result; this package does it with SQLite's quoting rules:
//
//   - integers are written in decimal, negative ones in parentheses so that a
//     preceding minus sign cannot turn them into a `--` comment;
//   - floats are written so that SQLite reads them back as REAL, and NaN and
//     infinities are rejected because SQLite has no literal for them;
//   - strings are single-quoted with embedded quotes doubled. Backslashes,
//     newlines and `?` need no escaping inside an SQLite string literal;
//   - booleans become 1 and 0 and nil becomes NULL;
//   - []byte becomes a blob literal X'..';
//   - an Identifier argument is written as a name, but only when it is on the
//     fixed allow-list of osquery tables and columns that svclaunch reads.
//
// Strings that contain a NUL byte or invalid UTF-8 are rejected with an error
// rather than encoded. osquery passes the statement to sqlite3_prepare_v2 as a
// NUL-terminated C string (queryInternal in osquery/sql/sqlite_util.cpp), so a
// NUL byte would cut the statement short, and both osquery's Thrift strings and
// SQLite's text functions assume UTF-8. No osquery table that svclaunch queries
// needs such a value in a WHERE clause, so rejecting is the safer choice.
//
// The scanner that finds placeholders skips quoted strings, quoted
// identifiers and comments, so a `?` inside them is left alone. Following
// squirrel's convention, `??` outside quotes is an escaped question mark and
// is written as a single `?`.
package sqlliteral

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/squirrel"
)

// Identifier is a table or column name passed as an argument. Render writes it
// unquoted after checking it against the allow-list (see Ident).
type Identifier string

// ErrNotAllowed is returned for an identifier that is not on the allow-list.
var ErrNotAllowed = errors.New("identifier is not on the allow-list")

// allowedIdentifiers lists the osquery tables and columns that svclaunch's
// queries name. Every entry is a plain lower-case word that SQLite does not
// treat as a reserved keyword in these positions, so it needs no quoting.
var allowedIdentifiers = map[string]bool{
	// Tables.
	"windows_events": true,
	"process_events": true,
	"socket_events":  true,
	"time":           true,

	// windows_events columns ("time" is listed above).
	"datetime":      true,
	"source":        true,
	"provider_name": true,
	"computer_name": true,
	"eventid":       true,
	"data":          true,
	"eid":           true,

	// process_events and socket_events columns.
	"pid":            true,
	"parent":         true,
	"path":           true,
	"cmdline":        true,
	"uptime":         true,
	"auid":           true,
	"uid":            true,
	"action":         true,
	"family":         true,
	"protocol":       true,
	"local_address":  true,
	"local_port":     true,
	"remote_address": true,
	"remote_port":    true,

	// The time table's column.
	"unix_time": true,

	// process_etw_events, its ProcessStart rows' columns ("pid", "path",
	// "cmdline" and "time" are listed above) and its event type.
	"process_etw_events":             true,
	"type":                           true,
	"ppid":                           true,
	"username":                       true,
	"time_windows":                   true,
	"header_pid":                     true,
	"process_sequence_number":        true,
	"parent_process_sequence_number": true,

	// processes, read for the pid and start time of services.exe.
	"processes":  true,
	"name":       true,
	"start_time": true,

	// osquery's own tables, read to find which event sources are enabled.
	"osquery_registry": true,
	"osquery_events":   true,
	"osquery_flags":    true,
	"registry":         true,
	"publisher":        true,
	"active":           true,
	"value":            true,
}

// Ident returns name unchanged when it is on the allow-list of osquery tables
// and columns, and an error wrapping ErrNotAllowed otherwise. Query builders
// pass every table and column name through it before handing it to squirrel.
func Ident(name string) (string, error) {
	if !allowedIdentifiers[name] {
		return "", fmt.Errorf("checking identifier %q: %w (add it to the list in package sqlliteral if osquery has it)", name, ErrNotAllowed)
	}
	return name, nil
}

// Idents checks every name with Ident and returns them in order.
func Idents(names ...string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, name := range names {
		checked, err := Ident(name)
		if err != nil {
			return nil, err
		}
		out = append(out, checked)
	}
	return out, nil
}

// Render builds s and returns its SQL with every placeholder replaced by the
// literal of its argument. It fails when s fails to build, when the number of
// placeholders and arguments differ, or when an argument cannot be written
// safely (see the package documentation).
func Render(s squirrel.Sqlizer) (string, error) {
	sql, args, err := s.ToSql()
	if err != nil {
		return "", fmt.Errorf("building sql: %w", err)
	}
	return Inline(sql, args...)
}

// Inline replaces each `?` placeholder of sql, outside quotes and comments, by
// the literal of the matching argument.
func Inline(sql string, args ...any) (string, error) {
	var out strings.Builder
	out.Grow(len(sql) + 16*len(args))

	next := 0
	for i := 0; i < len(sql); {
		c := sql[i]

		switch {
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end, err := skipQuoted(sql, i)
			if err != nil {
				return "", err
			}
			out.WriteString(sql[i:end])
			i = end

		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql)
			} else {
				end += i
			}
			out.WriteString(sql[i:end])
			i = end

		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			// An unterminated block comment runs to the end, as in SQLite.
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				end = len(sql)
			} else {
				end += i + 4
			}
			out.WriteString(sql[i:end])
			i = end

		case c == '?' && i+1 < len(sql) && sql[i+1] == '?':
			out.WriteByte('?')
			i += 2

		case c == '?':
			if i+1 < len(sql) && isDigit(sql[i+1]) {
				return "", fmt.Errorf("rendering sql at byte %d: numbered parameters like ?1 are not supported; use plain ?", i)
			}
			if next >= len(args) {
				return "", fmt.Errorf("rendering sql: more placeholders than the %d arguments", len(args))
			}

			literal, err := Literal(args[next])
			if err != nil {
				return "", fmt.Errorf("rendering argument %d: %w", next+1, err)
			}

			// Keep the literal a token of its own: `x?` with 5 must not
			// become the identifier x5, `X?` with 'a' a blob literal,
			// `?''` with '0' the string 0', nor `1.?` with 5 the number 1.5.
			if i > 0 && mergesWithLiteral(sql[i-1]) {
				out.WriteByte(' ')
			}
			out.WriteString(literal)
			if i+1 < len(sql) && mergesWithLiteral(sql[i+1]) {
				out.WriteByte(' ')
			}

			next++
			i++

		case (c == ':' || c == '@' || c == '$') && (i == 0 || !isWordByte(sql[i-1])) && i+1 < len(sql) && isWordByte(sql[i+1]):
			// SQLite reads these as named parameters, which osquery would
			// leave unbound (NULL) without an error.
			return "", fmt.Errorf("rendering sql at byte %d: named parameter %q is not supported; use ? with an argument", i, sql[i:min(len(sql), i+16)])

		default:
			out.WriteByte(c)
			i++
		}
	}

	if next != len(args) {
		return "", fmt.Errorf("rendering sql: %d placeholders for %d arguments", next, len(args))
	}
	return out.String(), nil
}

// skipQuoted returns the index just past the quoted token that starts at
// start. SQLite escapes a closing quote inside the token by doubling it, but a
// bracketed identifier cannot contain `]` at all.
func skipQuoted(sql string, start int) (int, error) {
	closing := sql[start]
	if closing == '[' {
		closing = ']'
	}

	for i := start + 1; i < len(sql); i++ {
		if sql[i] != closing {
			continue
		}
		if closing != ']' && i+1 < len(sql) && sql[i+1] == closing {
			i++
			continue
		}
		return i + 1, nil
	}
	return 0, fmt.Errorf("rendering sql: unterminated %c at byte %d", sql[start], start)
}

// Literal returns the SQLite literal for one argument value.
func Literal(v any) (string, error) {
	switch value := v.(type) {
	case nil:
		return "NULL", nil
	case Identifier:
		return Ident(string(value))
	case []byte:
		if value == nil {
			return "NULL", nil
		}
		return fmt.Sprintf("X'%X'", value), nil
	}

	// Reflection covers named types such as `type Channel string` as well as
	// pointers, which squirrel passes through unchanged.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return "NULL", nil
		}
		return Literal(rv.Elem().Interface())

	case reflect.Bool:
		if rv.Bool() {
			return "1", nil
		}
		return "0", nil

	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return formatInt(rv.Int()), nil

	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			// SQLite would read a larger decimal literal as a REAL and lose
			// precision silently.
			return "", fmt.Errorf("unsigned integer %d is larger than SQLite's 64-bit signed integer", u)
		}
		return strconv.FormatUint(u, 10), nil

	case reflect.Float32, reflect.Float64:
		return formatFloat(rv.Float())

	case reflect.String:
		return quoteString(rv.String())
	}

	return "", fmt.Errorf("unsupported argument type %T; pass an integer, float, string, bool, []byte, Identifier or nil", v)
}

func formatInt(n int64) string {
	if n < 0 {
		return "(" + strconv.FormatInt(n, 10) + ")"
	}
	return strconv.FormatInt(n, 10)
}

func formatFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("float %v has no SQLite literal", f)
	}

	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		// Keep the REAL type: SQLite reads "1" as an INTEGER.
		s += ".0"
	}
	if f < 0 || (f == 0 && math.Signbit(f)) {
		return "(" + s + ")", nil
	}
	return s, nil
}

func quoteString(s string) (string, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return "", fmt.Errorf("string %s contains a NUL byte at offset %d, which osquery would cut the statement at; remove it", preview(s), i)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("string %s is not valid UTF-8; convert it before querying", preview(s))
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}

// preview quotes the start of a rejected value for an error message.
func preview(s string) string {
	const limit = 40
	if len(s) > limit {
		return strconv.QuoteToASCII(s[:limit]) + "..."
	}
	return strconv.QuoteToASCII(s)
}

func isDigit(c byte) bool {
	return c >= '0' && c <= '9'
}

// isWordByte reports whether c can continue an SQLite identifier or number.
// Bytes of multi-byte UTF-8 characters count, because SQLite allows them in
// identifiers.
// mergesWithLiteral reports whether c, next to a literal, would make SQLite
// read the two as one token: a word byte, a quote or a decimal point.
func mergesWithLiteral(c byte) bool {
	return isWordByte(c) || c == '\'' || c == '"' || c == '`' || c == '[' || c == '.'
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}
