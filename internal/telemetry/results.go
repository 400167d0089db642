package telemetry

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// resultsDecoder reads osquery results-log lines: differential lines with
// "columns" and "action", snapshot lines with a "snapshot" array, and batch
// lines with "diffResults" (osqueryd --logger_event_type=false).
type resultsDecoder struct {
	b     *Batch
	table string
}

func newResultsDecoder(b *Batch, opts Options) lineDecoder {
	return &resultsDecoder{b: b, table: opts.Table}
}

func (d *resultsDecoder) decode(obj object, _ int) {
	host := resultsHost(obj)
	query, _ := obj.text("name")
	if unixTime, ok := obj.text("unixTime"); ok {
		if n, err := strconv.ParseInt(unixTime, 10, 64); err == nil {
			d.b.advanceClock(n)
		}
	}

	if raw, ok := obj.get("columns"); ok {
		if action, _ := obj.text("action"); action == "removed" {
			d.b.skip(SkipRemoved)
			return
		}
		d.addRow(raw, host, query)
		return
	}

	if raw, ok := obj.get("snapshot"); ok {
		d.addRows(raw, host, query)
		return
	}

	if diff, ok := obj.child("diffResults"); ok {
		if raw, ok := diff.get("added"); ok {
			d.addRows(raw, host, query)
		}
		if raw, ok := diff.get("removed"); ok {
			var removed []json.RawMessage
			if json.Unmarshal(raw, &removed) == nil {
				d.b.Skipped[SkipRemoved] += len(removed)
			}
		}
		return
	}

	d.b.skip(SkipMissingColumns)
}

func (d *resultsDecoder) finish() {}

// resultsHost returns the line's host: hostIdentifier, or a hostname or
// computer_name decoration when the identifier is missing.
func resultsHost(obj object) string {
	if host, ok := obj.text("hostIdentifier"); ok && host != "" {
		return host
	}
	if decorations, ok := obj.child("decorations"); ok {
		for _, key := range []string{"hostname", "computer_name"} {
			if host, ok := decorations.text(key); ok && host != "" {
				return host
			}
		}
	}
	return ""
}

func (d *resultsDecoder) addRows(raw json.RawMessage, host, query string) {
	var rows []json.RawMessage
	if err := json.Unmarshal(raw, &rows); err != nil {
		d.b.skip(SkipMissingColumns)
		return
	}
	for _, row := range rows {
		d.addRow(row, host, query)
	}
}

func (d *resultsDecoder) addRow(raw json.RawMessage, host, query string) {
	columns, err := decodeObject(raw)
	if err != nil {
		d.b.skip(SkipMissingColumns)
		return
	}

	row := make(map[string]string, len(columns))
	for _, m := range columns {
		row[m.name] = valueText(m.value)
	}

	table, reason := d.tableOf(row, query)
	if reason != "" {
		d.b.skip(reason)
		return
	}

	d.b.add(table, host, row)
	if n, err := strconv.ParseInt(row["time"], 10, 64); err == nil {
		d.b.advanceClock(n)
	}
}

// tableOf returns the table a row belongs to: Options.Table when set, else
// the one table whose columns include all of the row's. When several tables
// qualify, the one named in the query name wins. Failing that, the one whose
// SELECT * columns equal the row's wins. Otherwise the row is skipped rather
// than guessed.
func (d *resultsDecoder) tableOf(row map[string]string, query string) (string, string) {
	if d.table != "" {
		return d.table, ""
	}

	var candidates []knownTable
	for _, t := range knownTables() {
		if t.hasAll(row) {
			candidates = append(candidates, t)
		}
	}

	switch len(candidates) {
	case 0:
		return "", SkipUnknownTable
	case 1:
		return candidates[0].name, ""
	}

	var named []string
	for _, t := range candidates {
		if strings.Contains(query, t.name) {
			named = append(named, t.name)
		}
	}
	if len(named) == 1 {
		return named[0], ""
	}

	var exact []string
	for _, t := range candidates {
		if t.visibleEquals(row) {
			exact = append(exact, t.name)
		}
	}
	if len(exact) == 1 {
		return exact[0], ""
	}
	return "", SkipAmbiguousTable
}

// knownTable is an osquery table that results-log rows can load into.
type knownTable struct {
	name string
	// columns are every column of the table on any platform.
	columns []string
	// visible lists, per platform, the columns SELECT * returns there.
	visible [][]string
}

func (t knownTable) hasAll(row map[string]string) bool {
	for column := range row {
		if !slices.Contains(t.columns, column) {
			return false
		}
	}
	return true
}

// visibleEquals reports whether the row has exactly the columns of SELECT *
// on one of the table's platforms.
func (t knownTable) visibleEquals(row map[string]string) bool {
	for _, visible := range t.visible {
		if len(row) != len(visible) {
			continue
		}
		all := true
		for _, column := range visible {
			if _, ok := row[column]; !ok {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
