package output

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// needsEscape reports whether r must not reach a terminal or a spreadsheet
// as it is. That covers C0 and C1 controls and DEL, which start ANSI escape
// sequences, move the cursor or end lines. It also covers Unicode format
// characters (bidirectional overrides and zero-width characters, which
// reorder or hide text) and the separators U+2028 and U+2029.
func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// EscapeText returns s with every character that needsEscape reports, and
// every byte that is not valid UTF-8, replaced by a visible escape. \t, \n
// and \r are written by name, other bytes below 0x80 and invalid bytes as
// \xNN, and other characters as \uNNNN or \UNNNNNNNN. Everything else, backslashes included,
// is kept, so Windows paths stay readable.
//
// NOTE: because backslashes are kept, the escaped text is not reversible: a
// command line that contains the four characters \x1b reads the same as one
// that contains ESC. The JSON formats carry the exact value.
func EscapeText(s string) string {
	if !hasUnsafe(s) {
		return s
	}

	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case needsEscape(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r) && r <= 0xFFFF:
			fmt.Fprintf(&b, `\u%04x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// hasUnsafe reports whether EscapeText would change s; most values are plain
// text, and this keeps them from being copied.
func hasUnsafe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || needsEscape(r) {
			return true
		}
		i += size
	}
	return false
}
