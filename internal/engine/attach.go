package engine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite/vtab"

	"github.com/svclaunch/svclaunch/internal/osqueryschema"
)

// GenerateFunc returns the rows of an attached table, every value a string
// as in osquery-go. queryContextJSON is the "context" that osqueryd sends
// with an extension's generate call. It may be called concurrently, and it
// may run SQL on the engine.
//
// NOTE: ctx is the engine's context, cancelled by Close. It does not carry
// the deadline of the QueryRows call that scans the table, because SQLite
// calls the table back without it. Cancelling that call interrupts SQLite
// between rows but not a running generate.
type GenerateFunc func(ctx context.Context, queryContextJSON string) ([]map[string]string, error)

// Column is a column of an attached table, as an extension declares it.
type Column struct {
	// Name is the column name.
	Name string
	// Type is osquery's type name: TEXT, INTEGER, BIGINT, UNSIGNED BIGINT,
	// DOUBLE or BLOB.
	Type string
	// Options is osquery's column options bitmask: 1 index, 2 required,
	// 4 additional, 8 optimized, 16 hidden.
	Options int
}

// moduleName is the SQLite module behind every engine virtual table.
const moduleName = "svclaunch_osquery"

var (
	registerOnce sync.Once
	registerErr  error

	// engines maps an engine id, passed as the module argument of CREATE
	// VIRTUAL TABLE, to its engine. The module is registered once per
	// process, so xCreate and xConnect find their engine here.
	engines   sync.Map
	engineSeq atomic.Int64
)

// registerWithDriver registers the virtual table module and osquery's
// version collations with the SQLite driver. Registration only reaches
// connections opened afterwards, so it runs before the first engine opens
// its database.
func registerWithDriver() error {
	registerOnce.Do(func() {
		if err := vtab.RegisterModule(nil, moduleName, module{}); err != nil {
			registerErr = fmt.Errorf("registering the SQLite module %s: %w", moduleName, err)
			return
		}
		registerErr = registerVersionCollations()
	})
	return registerErr
}

func newEngineID() string {
	return strconv.FormatInt(engineSeq.Add(1), 10)
}

func registerEngine(e *Engine)   { engines.Store(e.id, e) }
func unregisterEngine(e *Engine) { engines.Delete(e.id) }

// tableNamePattern limits attached table names to plain identifiers, as
// osquery registry names are.
var tableNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var columnTypes = map[string]bool{
	"TEXT": true, "INTEGER": true, "BIGINT": true, "UNSIGNED BIGINT": true, "DOUBLE": true, "BLOB": true,
}

// AttachTable adds a virtual table that behaves like an extension table in
// osqueryd: SQLite's constraints reach generate as osquery's query-context
// JSON, and the returned strings are converted to the column types. SQLite
// applies the whole WHERE clause again to the returned rows.
func (e *Engine) AttachTable(name string, columns []Column, generate GenerateFunc) error {
	if !tableNamePattern.MatchString(name) {
		return fmt.Errorf("invalid table name %q: use letters, digits and underscores", name)
	}
	if generate == nil {
		return fmt.Errorf("attaching table %s: generate function is nil", name)
	}
	if len(columns) == 0 {
		return fmt.Errorf("attaching table %s: no columns", name)
	}
	if _, ok := osqueryschema.Lookup(name); ok || name == timeTableName {
		return fmt.Errorf("attaching table %s: an osquery table has this name", name)
	}
	seen := map[string]bool{}
	for _, c := range columns {
		if !columnTypes[c.Type] {
			return fmt.Errorf("attaching table %s: column %q has unknown type %q: use TEXT, INTEGER, BIGINT, UNSIGNED BIGINT, DOUBLE or BLOB", name, c.Name, c.Type)
		}
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("attaching table %s: column name %q is empty or repeated", name, c.Name)
		}
		seen[c.Name] = true
	}

	schemaColumns := make([]osqueryschema.Column, len(columns))
	for i, c := range columns {
		schemaColumns[i] = osqueryschema.Column{Name: c.Name, Type: c.Type, Options: c.Options}
	}
	def := newVirtualTable(name, schemaColumns, true, e.opts, generate)
	return e.createVirtualTable(context.Background(), def)
}

// createVirtualTable records def and creates it in the database.
func (e *Engine) createVirtualTable(ctx context.Context, def *virtualTable) error {
	def.engine = e
	e.mu.Lock()
	if _, ok := e.tables[def.name]; ok {
		e.mu.Unlock()
		return fmt.Errorf("attaching table %s: the table already exists", def.name)
	}
	e.tables[def.name] = def
	e.mu.Unlock()

	stmt := "CREATE VIRTUAL TABLE " + quoteIdentifier(def.name) + " USING " + moduleName + "(" + e.id + ")"
	if _, err := e.db.ExecContext(ctx, stmt); err != nil {
		e.mu.Lock()
		delete(e.tables, def.name)
		e.mu.Unlock()
		return fmt.Errorf("creating virtual table %s: %w", def.name, err)
	}
	return nil
}

// lookupTable finds a virtual table definition from xCreate/xConnect
// arguments: module name, database name, table name, engine id.
func lookupTable(args []string) (*virtualTable, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("%s: expected the engine id as the module argument", moduleName)
	}
	value, ok := engines.Load(args[3])
	if !ok {
		return nil, fmt.Errorf("%s: engine %s is closed", moduleName, args[3])
	}
	e := value.(*Engine)

	e.mu.RLock()
	def, ok := e.tables[args[2]]
	e.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: table %s is not attached", moduleName, args[2])
	}
	return def, nil
}

// module implements vtab.Module. Create and Connect are the same, as in
// osquery, because the table's data never lives in the database file.
type module struct{}

func (module) Create(ctx vtab.Context, args []string) (vtab.Table, error) {
	return connect(ctx, args)
}

func (module) Connect(ctx vtab.Context, args []string) (vtab.Table, error) {
	return connect(ctx, args)
}

func connect(ctx vtab.Context, args []string) (vtab.Table, error) {
	def, err := lookupTable(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Declare(def.declaration); err != nil {
		return nil, fmt.Errorf("declaring table %s with %q: %w", def.name, def.declaration, err)
	}
	return &table{def: def}, nil
}
