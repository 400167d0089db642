package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/svclaunch/svclaunch/internal/osqueryschema"
)

const timeTableName = "time"

// createTables creates a stored table for every osquery table except time,
// and the time virtual table.
func (e *Engine) createTables(ctx context.Context) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting the schema transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	for _, t := range osqueryschema.All() {
		if t.Name == timeTableName {
			continue
		}
		if _, err := tx.ExecContext(ctx, storageSQL(t)); err != nil {
			return fmt.Errorf("creating table %s: %w", t.Name, err)
		}
		if e.opts.IndexTime && t.EventBased() {
			if _, ok := t.Column("time"); ok {
				stmt := "CREATE INDEX " + quoteIdentifier(t.Name+"_time") + " ON " + quoteIdentifier(t.Name) + " (time)"
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("creating the time index of %s: %w", t.Name, err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing the schema: %w", err)
	}

	// svclaunch reads Windows telemetry, so the time table has the columns
	// osqueryd has on Windows (win_timestamp is visible).
	timeSchema, _ := osqueryschema.Lookup(timeTableName)
	timeSchema = timeSchema.ForPlatform(osqueryschema.PlatformWindows)
	def := newVirtualTable(timeTableName, timeSchema.Columns, false, e.opts, e.timeRows)
	return e.createVirtualTable(ctx, def)
}

// storageSQL renders the CREATE TABLE of a stored table. Unlike osquery's
// declaration (osqueryschema.Table.CreateTableSQL) it has no PRIMARY KEY,
// because osquery's keys describe constraint handling, not uniqueness, and
// no HIDDEN, which only virtual tables support. Column aliases become
// generated columns that return their target.
func storageSQL(t osqueryschema.Table) string {
	var parts []string
	for _, c := range t.Columns {
		part := quoteIdentifier(c.Name) + " " + c.SQLType()
		if coll := c.Collation(); coll != "" {
			part += " COLLATE " + coll
		}
		parts = append(parts, part)
	}
	for _, a := range osqueryschema.AliasColumns(t.Columns) {
		target, _ := t.Column(a.Target)
		parts = append(parts, quoteIdentifier(a.Name)+" "+target.SQLType()+" GENERATED ALWAYS AS ("+quoteIdentifier(a.Target)+") VIRTUAL")
	}
	return "CREATE TABLE " + quoteIdentifier(t.Name) + " (" + strings.Join(parts, ", ") + ")"
}

// timeRows returns the time table's single row, computed as osquery's genTime
// (osquery/tables/utility/time.cpp) computes it, from the engine clock.
func (e *Engine) timeRows(context.Context, string) ([]map[string]string, error) {
	now := e.now()
	iso := now.Format("2006-01-02T15:04:05Z")

	// win_timestamp is the current FILETIME: 100 ns ticks since 1601.
	const filetimeUnixEpoch = 116444736000000000
	filetime := now.Unix()*10_000_000 + int64(now.Nanosecond()/100) + filetimeUnixEpoch

	return []map[string]string{{
		"weekday":  now.Format("Monday"),
		"year":     fmt.Sprint(now.Year()),
		"month":    fmt.Sprint(int(now.Month())),
		"day":      fmt.Sprint(now.Day()),
		"hour":     fmt.Sprint(now.Hour()),
		"minutes":  fmt.Sprint(now.Minute()),
		"seconds":  fmt.Sprint(now.Second()),
		"timezone": "UTC",
		// The engine stands for no particular host, so its local time
		// zone is UTC.
		"local_timezone": "UTC",
		"unix_time":      fmt.Sprint(now.Unix()),
		// asctime's layout, trimmed, with " UTC" appended (toAsciiTime in
		// osquery/utils/system/time.cpp).
		"timestamp":     now.Format("Mon Jan _2 15:04:05 2006") + " UTC",
		"datetime":      iso,
		"iso_8601":      iso,
		"win_timestamp": fmt.Sprint(filetime),
	}}, nil
}
