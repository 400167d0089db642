// Package resultslog writes loaded telemetry rows as osquery results-log
// lines. A recording written this way replays through the same loader path
// as a results log from a real osqueryd, so tests can cover that path with
// real recordings.
package resultslog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// DefaultQueryPrefix starts the query name of every written line.
const DefaultQueryPrefix = "svclaunch_replay"

// Options tunes Write.
type Options struct {
	// QueryPrefix starts each line's query name, followed by "_" and the
	// table name ("svclaunch_replay_windows_events"); empty means
	// DefaultQueryPrefix. The loader uses the table name in the query
	// name to place rows whose columns fit several tables.
	QueryPrefix string
}

// line is one differential results-log line as osqueryd writes it with
// --logger_event_type=true (the default).
type line struct {
	Name           string            `json:"name"`
	HostIdentifier string            `json:"hostIdentifier"`
	CalendarTime   string            `json:"calendarTime"`
	UnixTime       int64             `json:"unixTime"`
	Epoch          int64             `json:"epoch"`
	Counter        int64             `json:"counter"`
	Numerics       bool              `json:"numerics"`
	Columns        map[string]string `json:"columns"`
	Action         string            `json:"action"`
}

// calendarTimeLayout is osquery's calendarTime, which toAsciiTime in
// osquery/utils/system/time.cpp builds from asctime() of the UTC time with
// " UTC" appended: "Sun Sep 20 16:16:58 2020 UTC".
const calendarTimeLayout = "Mon Jan _2 15:04:05 2006 UTC"

// Write writes every row of b as one "added" line, tables in name order and
// rows in load order. The host of a row becomes hostIdentifier. unixTime is
// the row's `time` column, or b.Clock for rows without one.
func Write(w io.Writer, b *telemetry.Batch, opts Options) error {
	prefix := opts.QueryPrefix
	if prefix == "" {
		prefix = DefaultQueryPrefix
	}

	tables := make([]string, 0, len(b.Rows))
	for table := range b.Rows {
		tables = append(tables, table)
	}
	slices.Sort(tables)

	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)

	for _, table := range tables {
		hosts := b.Hosts[table]
		for i, row := range b.Rows[table] {
			unixTime := b.Clock
			if n, err := strconv.ParseInt(row["time"], 10, 64); err == nil {
				unixTime = n
			}
			host := ""
			if i < len(hosts) {
				host = hosts[i]
			}

			err := enc.Encode(line{
				Name:           prefix + "_" + table,
				HostIdentifier: host,
				CalendarTime:   time.Unix(unixTime, 0).UTC().Format(calendarTimeLayout),
				UnixTime:       unixTime,
				Columns:        row,
				Action:         "added",
			})
			if err != nil {
				return fmt.Errorf("writing results-log line for table %s row %d: %w", table, i, err)
			}
		}
	}

	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing results log: %w", err)
	}
	return nil
}
