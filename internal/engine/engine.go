// Package engine is an embedded SQLite database that holds osquery's table
// schemas, so that svclaunch's SQL can run against recorded telemetry the
// way it runs against osqueryd. It implements osq.Querier.
//
// Rows of osquery's tables (osqueryschema) are stored in ordinary SQLite
// tables and loaded with Insert. The time table and tables added with
// AttachTable are virtual tables that behave like osqueryd's: constraints
// reach a generate function as osquery's query-context JSON, and returned
// strings are converted to column types the way osquery converts them.
//
// NOTE: of the SQL functions osquery adds to SQLite (split, regex_match,
// concat, version_compare and others), none is registered here, so a query
// that uses them fails on the engine. SQLite's JSON functions are available
// in both.
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

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

	// clock is the Unix time of the time table once clockSet is true.
	// Before that the table reads the wall clock.
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
	if err := registerWithDriver(); err != nil {
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

// QueryRows runs SQL and returns its rows as osquery's extension API does:
// every value is a string, NULL is "", integers are decimal and doubles are
// printed like osquery prints them. Like osqueryd's queryInternal
// (osquery/sql/sqlite_util.cpp), SQL with several statements runs them in
// order and returns the rows of all of them. A failed statement returns a
// *QueryError.
//
// NOTE: the stored osquery tables are ordinary SQLite tables, so SELECT *
// also returns their hidden columns (for example windows_events.eid and
// process_etw_events.time), which osqueryd leaves out.
func (e *Engine) QueryRows(ctx context.Context, query string) ([]map[string]string, error) {
	result, err := e.query(ctx, query)
	return result.rows, err
}

// QueryColumns runs SQL as QueryRows does and also returns the names of the
// result columns in the statement's order, which for SELECT * is the table's
// declared order. The names are returned even when there are no rows. With
// several statements, the names of all of them follow in order of first
// appearance. A name that occurs twice is listed once, because a row keeps
// one value per name (the last, as in QueryRows).
func (e *Engine) QueryColumns(ctx context.Context, query string) (columns []string, rows []map[string]string, err error) {
	result, err := e.query(ctx, query)
	return result.columns, result.rows, err
}

// queryResult is the output of query.
type queryResult struct {
	columns []string
	rows    []map[string]string
}

// query runs the statements of query and collects their columns and rows.
// On error the result is empty.
func (e *Engine) query(ctx context.Context, query string) (queryResult, error) {
	statements := splitStatements(query)
	result := queryResult{columns: []string{}, rows: []map[string]string{}}
	if len(statements) == 0 {
		return result, nil
	}
	if len(statements) == 1 {
		if err := result.add(ctx, e.db, statements[0]); err != nil {
			return queryResult{}, err
		}
		return result, nil
	}

	// Several statements share one connection, so that temporary tables
	// and other connection state carry over from one to the next.
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return queryResult{}, &QueryError{Message: err.Error(), Err: err}
	}
	defer conn.Close()
	for _, statement := range statements {
		if err := result.add(ctx, conn, statement); err != nil {
			return queryResult{}, err
		}
	}
	return result, nil
}

// queryer is the query method shared by *sql.DB and *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// add runs one statement and appends its new column names and its rows.
func (r *queryResult) add(ctx context.Context, q queryer, statement string) error {
	rows, err := q.QueryContext(ctx, statement)
	if err != nil {
		return newQueryError(err)
	}
	defer rows.Close()

	names, err := rows.Columns()
	if err != nil {
		return newQueryError(err)
	}
	for _, name := range names {
		if !slices.Contains(r.columns, name) {
			r.columns = append(r.columns, name)
		}
	}

	values := make([]any, len(names))
	pointers := make([]any, len(names))
	for i := range values {
		pointers[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(pointers...); err != nil {
			return newQueryError(err)
		}
		row := make(map[string]string, len(names))
		for i, name := range names {
			row[name] = formatResult(values[i])
		}
		r.rows = append(r.rows, row)
	}
	if err := rows.Err(); err != nil {
		return newQueryError(err)
	}
	return nil
}

// QueryError is the error of a failed query.
type QueryError struct {
	// Message is SQLite's error message (sqlite3_errmsg), such as
	// `no such table: x`. osqueryd returns this text as the status message
	// of a failed query.
	Message string
	// Err is the driver's error.
	Err error
}

func (e *QueryError) Error() string { return "running query: " + e.Message }

func (e *QueryError) Unwrap() error { return e.Err }

// newQueryError extracts SQLite's message from a driver error, which the
// driver formats as "<errstr>: <errmsg> (<code>)" or "<errstr> (<code>)".
func newQueryError(err error) *QueryError {
	var driverErr *sqlite.Error
	if !errors.As(err, &driverErr) {
		return &QueryError{Message: err.Error(), Err: err}
	}

	message := driverErr.Error()
	message = strings.TrimSuffix(message, " (SQLITE_BUSY)")
	message = strings.TrimSuffix(message, fmt.Sprintf(" (%d)", driverErr.Code()))
	// SQLite's errstr texts ("SQL logic error", "database is locked") have
	// no ": ", so the first one ends the errstr.
	if _, errmsg, found := strings.Cut(message, ": "); found {
		message = errmsg
	}
	return &QueryError{Message: message, Err: err}
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
		return osqueryschema.Table{}, errors.New("table time is computed from the engine clock and cannot be inserted into: use SetClock")
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
