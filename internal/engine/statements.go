package engine

import (
	"strings"
)

// splitStatements splits SQL text into statements at top-level semicolons,
// skipping semicolons inside quotes, identifiers and comments. Statements
// with nothing but white space and comments are dropped. Inside CREATE
// TRIGGER only a semicolon after END ends the statement, as in SQLite's
// sqlite3_complete.
func splitStatements(text string) []string {
	var out []string
	start := 0
	hasCode := false // the current statement has more than space and comments
	inTrigger := false
	var lastWord string // the last bare word, upper-case, for END detection
	var words []string  // the first words of the statement, upper-case

	flush := func(end int) {
		if hasCode {
			out = append(out, strings.TrimSpace(text[start:end]))
		}
		start = end + 1
		hasCode = false
		inTrigger = false
		lastWord = ""
		words = words[:0]
	}

	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				i = len(text)
			} else {
				i += 2 + end + 1
			}
		case c == '\'' || c == '"' || c == '`' || c == '[':
			closing := c
			if c == '[' {
				closing = ']'
			}
			i++
			for i < len(text) {
				if text[i] == closing {
					// A doubled quote is an escaped quote, except in brackets.
					if closing != ']' && i+1 < len(text) && text[i+1] == closing {
						i += 2
						continue
					}
					break
				}
				i++
			}
			hasCode = true
			lastWord = ""
		case c == ';':
			if inTrigger && lastWord != "END" {
				lastWord = ""
				continue
			}
			flush(i)
		case isWordByte(c):
			j := i
			for j < len(text) && isWordByte(text[j]) {
				j++
			}
			word := strings.ToUpper(text[i:j])
			i = j - 1
			hasCode = true
			lastWord = word
			if len(words) < 4 {
				words = append(words, word)
				inTrigger = inTrigger || isCreateTrigger(words)
			}
		case !isCSpace(c):
			hasCode = true
			lastWord = ""
		}
	}
	flush(len(text))
	return out
}

// isCreateTrigger reports whether the first words of a statement are
// CREATE [TEMP | TEMPORARY] TRIGGER.
func isCreateTrigger(words []string) bool {
	if len(words) < 2 || words[0] != "CREATE" {
		return false
	}
	if words[1] == "TRIGGER" {
		return true
	}
	return len(words) >= 3 && (words[1] == "TEMP" || words[1] == "TEMPORARY") && words[2] == "TRIGGER"
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}
