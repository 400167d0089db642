// Package engine is an embedded SQLite database that holds osquery's table
// schemas, so that svclaunch's SQL can run against recorded telemetry the
// way it runs against osqueryd. It implements osq.Querier.
//
// Rows of osquery's tables (osqueryschema) are stored in ordinary SQLite
// tables and loaded with Insert. The time table and tables added with
// AttachTable are virtual tables that behave like osqueryd's: constraints
// reach a generate function as osquery's query-context JSON, and returned
// strings are converted to column types the way osquery converts them.
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/svclaunch/svclaunch/internal/osqueryschema"
)

// Options configures Open.
type Options struct {
	// Dir is the directory in which Open creates the engine's temporary
	// directory for the database file; "" means os.TempDir.
	Dir string
	// IndexTime adds an SQLite index on the time column of every evented
	// table. osquery's tables have no such index, but a large recording
	// queried with `time >= X` runs faster with it.
	IndexTime bool
	// DisableExtensionsDefaultIndex mirrors osqueryd's
	// --extensions_default_index=false. By default osqueryd treats every
	// extension column declared without options as INDEX, so constraints on
	// it reach the generate function (osquery/sql/virtual_table.cpp).
	DisableExtensionsDefaultIndex bool
}

// Engine is an open database. Its methods are safe for concurrent use.
type Engine struct {
	id   string
	dir  string
	db   *sql.DB
	opts Options

	// ctx is passed to generate functions and is cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex
	tables map[string]*virtualTable // the time table and attached tables

	// clock is the Unix time of the time table; clockSet false means the
	// wall clock.
	clock    atomic.Int64
	clockSet atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// busyTimeout is how long a connection waits for another connection's write
// lock. Inserts are the only writers and hold the lock for one transaction.
const busyTimeout = 30 * time.Second

// Open creates a database in a new temporary directory with every table of
// osqueryschema: ordinary tables for the stored tables and a virtual table
// for time.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	if err := registerModule(); err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp(opts.Dir, "svclaunch-engine-")
	if err != nil {
		return nil, fmt.Errorf("creating the engine directory in %q: %w", opts.Dir, err)
	}

	// WAL lets readers run while an insert commits, and the busy timeout
	// makes concurrent writers wait instead of failing with SQLITE_BUSY.
	// Several connections are needed because a generate function may run
	// SQL on the engine while the statement that called it is still open.
	dsn := filepath.Join(dir, "osquery.db") +
		fmt.Sprintf("?_pragma=journal_mode(WAL)&_pragma=busy_timeout(%d)&_txlock=immediate", busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("opening the engine database in %s: %w", dir, err)
	}

	engineCtx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		id:     newEngineID(),
		dir:    dir,
		db:     db,
		opts:   opts,
		ctx:    engineCtx,
		cancel: cancel,
		tables: map[string]*virtualTable{},
	}
	registerEngine(e)

	if err := e.createTables(ctx); err != nil {
		_ = e.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the database and removes its directory. It is safe to call
// more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.cancel()
		dbErr := e.db.Close()
		unregisterEngine(e)
		dirErr := os.RemoveAll(e.dir)
		if dbErr != nil {
			dbErr = fmt.Errorf("closing the engine database: %w", dbErr)
		}
		if dirErr != nil {
			dirErr = fmt.Errorf("removing the engine directory %s: %w", e.dir, dirErr)
		}
		e.closeErr = errors.Join(dbErr, dirErr)
	})
	return e.closeErr
}

// SetClock fixes the time table at unixSeconds. The clock does not advance
// afterwards. Until SetClock is called, the time table reads the wall clock.
func (e *Engine) SetClock(unixSeconds int64) {
	e.clock.Store(unixSeconds)
	e.clockSet.Store(true)
}

// now returns the time the time table reports.
func (e *Engine) now() time.Time {
	if e.clockSet.Load() {
		return time.Unix(e.clock.Load(), 0).UTC()
	}
	return time.Now().UTC()
}

// QueryRows runs one SQL statement and returns its rows as osquery's
// extension API does: every value is a string, NULL is "", integers are
// decimal and doubles are printed like osquery prints them.
//
// NOTE: the stored osquery tables are ordinary SQLite tables, so SELECT *
// also returns their hidden columns (for example windows_events.eid and
// process_etw_events.time), which osqueryd leaves out.
func (e *Engine) QueryRows(ctx context.Context, query string) ([]map[string]string, error) {
	rows, err := e.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("running query: %w", err)
	}
	defer rows.Close()

	names, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("reading result columns: %w", err)
	}
	values := make([]any, len(names))
	pointers := make([]any, len(names))
	for i := range values {
		pointers[i] = &values[i]
	}

	out := []map[string]string{}
	for rows.Next() {
		if err := rows.Scan(pointers...); err != nil {
			return nil, fmt.Errorf("reading result row %d: %w", len(out)+1, err)
		}
		row := make(map[string]string, len(names))
		for i, name := range names {
			row[name] = formatResult(values[i])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("running query: %w", err)
	}
	return out, nil
}

// Insert stores rows in one of osquery's stored tables in one transaction.
// Values are strings as osquery carries them and are converted to the
// column type as osquery converts table rows (an unparsable number becomes
// NULL). A column missing from a row is NULL. An unknown table or column is
// an error and nothing is stored.
func (e *Engine) Insert(ctx context.Context, table string, rows []map[string]string) error {
	schema, err := storedTable(table)
	if err != nil {
		return err
	}
	if err := checkRowColumns(schema, rows); err != nil {
		return err
	}

	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting the insert into %s: %w", table, err)
	}
	defer func() { _ = tx.Rollback() }()

	stmt, err := tx.PrepareContext(ctx, insertSQL(schema))
	if err != nil {
		return fmt.Errorf("preparing the insert into %s: %w", table, err)
	}
	defer stmt.Close()

	args := make([]any, len(schema.Columns))
	for i, row := range rows {
		for j, c := range schema.Columns {
			value, ok := row[c.Name]
			args[j] = toSQLiteValue(c.SQLType(), value, ok)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("inserting row %d into %s: %w", i+1, table, err)
		}
	}

	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing the insert into %s: %w", table, err)
	}
	return nil
}

// storedTable returns the schema of a table that Insert can write to.
func storedTable(name string) (osqueryschema.Table, error) {
	if name == timeTableName {
		return osqueryschema.Table{}, fmt.Errorf("table time is computed from the engine clock and cannot be inserted into: use SetClock")
	}
	t, ok := osqueryschema.Lookup(name)
	if !ok {
		return osqueryschema.Table{}, fmt.Errorf("unknown table %q: Insert accepts the osquery tables of package osqueryschema", name)
	}
	return t, nil
}

// checkRowColumns rejects any row key that is not a column of the table.
func checkRowColumns(t osqueryschema.Table, rows []map[string]string) error {
	known := make(map[string]bool, len(t.Columns))
	for _, c := range t.Columns {
		known[c.Name] = true
	}
	aliases := map[string]string{}
	for _, a := range osqueryschema.AliasColumns(t.Columns) {
		aliases[a.Name] = a.Target
	}

	for i, row := range rows {
		for name := range row {
			if known[name] {
				continue
			}
			if target, ok := aliases[name]; ok {
				return fmt.Errorf("row %d of %s: column %q is an alias of %q: store the value under %q", i+1, t.Name, name, target, target)
			}
			return fmt.Errorf("row %d of %s: unknown column %q", i+1, t.Name, name)
		}
	}
	return nil
}

func insertSQL(t osqueryschema.Table) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = quoteIdentifier(c.Name)
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
	return "INSERT INTO " + quoteIdentifier(t.Name) + " (" + strings.Join(names, ", ") + ") VALUES (" + placeholders + ")"
}

// quoteIdentifier quotes an SQL identifier, doubling embedded quotes.
func quoteIdentifier(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
