package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"modernc.org/sqlite/vtab"

	"github.com/svclaunch/svclaunch/internal/osqueryschema"
)

// maxIndexCost is osquery's kMaxIndexCost. A plan gets this cost when it
// has no usable constraint or misses a required column.
const maxIndexCost = 1000000

// SQLite's constraint operator codes (SQLITE_INDEX_CONSTRAINT_*). osqueryd
// forwards these numbers unchanged as the "op" of each constraint; the
// first ones equal osquery's ConstraintOperator values (osquery/core/tables.h).
const (
	opEquals             = 2
	opGreaterThan        = 4
	opLessThanOrEquals   = 8
	opLessThan           = 16
	opGreaterThanOrEqual = 32
	opMatch              = 64
	opLike               = 65
	opGlob               = 66
	opRegexp             = 67
	opNotEquals          = 68
	opIsNot              = 69
	opIsNotNull          = 70
	opIsNull             = 71
	opIs                 = 72
	opLimit              = 73
	opOffset             = 74
	opFunction           = 150
)

// sqliteOps maps the driver's operator enumeration back to SQLite's codes.
var sqliteOps = map[vtab.ConstraintOp]int{
	vtab.OpEQ:        opEquals,
	vtab.OpGT:        opGreaterThan,
	vtab.OpLE:        opLessThanOrEquals,
	vtab.OpLT:        opLessThan,
	vtab.OpGE:        opGreaterThanOrEqual,
	vtab.OpMATCH:     opMatch,
	vtab.OpLIKE:      opLike,
	vtab.OpGLOB:      opGlob,
	vtab.OpREGEXP:    opRegexp,
	vtab.OpNE:        opNotEquals,
	vtab.OpISNOT:     opIsNot,
	vtab.OpISNOTNULL: opIsNotNull,
	vtab.OpISNULL:    opIsNull,
	vtab.OpIS:        opIs,
	vtab.OpLIMIT:     opLimit,
	vtab.OpOFFSET:    opOffset,
	vtab.OpFUNCTION:  opFunction,
}

// vtColumn is a column as osqueryd's VirtualTableContent keeps it: the
// options after the extensions_default_index rule, and for a column alias
// the index of its target.
type vtColumn struct {
	name    string
	sqlType string
	options int
	target  int // index of the aliased column, or -1
}

// virtualTable is the definition behind one engine virtual table. SQLite
// creates one table instance per connection from it.
type virtualTable struct {
	name        string
	extension   bool
	columns     []vtColumn
	declaration string
	generate    GenerateFunc
	engine      *Engine
}

// newVirtualTable builds the definition as osqueryd's xCreate does
// (osquery/sql/virtual_table.cpp): the declaration uses the options the
// table sent, and for an extension table a column without options is then
// treated as INDEX unless --extensions_default_index is off. Column aliases
// follow the real columns as hidden columns of type UNKNOWN.
func newVirtualTable(name string, columns []osqueryschema.Column, extension bool, opts Options, generate GenerateFunc) *virtualTable {
	def := &virtualTable{
		name:        name,
		extension:   extension,
		declaration: "CREATE TABLE " + name + osqueryschema.ColumnDefinition(columns, extension),
		generate:    generate,
	}
	for _, c := range columns {
		options := c.Options
		if extension && !opts.DisableExtensionsDefaultIndex && options == 0 {
			options = osqueryschema.OptionIndex
		}
		def.columns = append(def.columns, vtColumn{name: c.Name, sqlType: c.SQLType(), options: options, target: -1})
	}

	for _, a := range osqueryschema.AliasColumns(columns) {
		target := 0
		for i, c := range columns {
			if c.Name == a.Target {
				target = i
				break
			}
		}
		def.columns = append(def.columns, vtColumn{name: a.Name, sqlType: "UNKNOWN", options: osqueryschema.OptionHidden, target: target})
	}
	return def
}

// plan is the constraint set and column use of one BestIndex result, passed
// to Filter as JSON in idxStr. osquery keeps the same data per idxNum in
// VirtualTableContent, but a string travels with the plan and needs no state
// shared between connections.
type plan struct {
	Constraints []planConstraint `json:"c"`
	ColsUsed    []string         `json:"u"`
	Bitset      uint64           `json:"b"`
}

type planConstraint struct {
	Name string `json:"n"`
	Op   int    `json:"o"`
}

// table is the per-connection instance (sqlite3_vtab) of a virtual table.
type table struct {
	def *virtualTable
}

// sensibleComparison is osquery's rule that range operators are never
// passed for TEXT columns.
func sensibleComparison(sqlType string, op int) bool {
	if sqlType == "TEXT" {
		switch op {
		case opGreaterThan, opGreaterThanOrEqual, opLessThan, opLessThanOrEquals:
			return false
		}
	}
	return true
}

// BestIndex follows osqueryd's xBestIndex. Usable constraints on INDEX,
// REQUIRED or ADDITIONAL columns are passed to Filter, except range
// operators on TEXT columns. The cost is 1 with such a constraint, and
// maxIndexCost without one or when a used REQUIRED column lacks one. Omit
// stays false, so SQLite checks every constraint again.
func (t *table) BestIndex(info *vtab.IndexInfo) error {
	columns := t.def.columns
	var p plan
	cost := float64(maxIndexCost)
	hasRequiredColumns := false
	hasRequiredConstraints := false

	argIndex := 0
	for i, c := range info.Constraints {
		if !c.Usable || c.Column < 0 || c.Column >= len(columns) {
			continue
		}
		op, known := sqliteOps[c.Op]
		if !known {
			// NOTE: osqueryd would pass an operator the driver does not
			// name; the driver hides its code, so it is not offered.
			continue
		}
		col := columns[c.Column]
		if !sensibleComparison(col.sqlType, op) {
			cost += 10
			continue
		}

		switch {
		case col.options&osqueryschema.OptionRequired != 0:
			hasRequiredConstraints = true
			cost = 1
		case col.options&(osqueryschema.OptionIndex|osqueryschema.OptionAdditional) != 0:
			cost = 1
		default:
			continue
		}

		// NOTE: osqueryd passes IN (...) on an OPTIMIZED column as one
		// call with several EQUALS entries (sqlite3_vtab_in). The driver
		// has no sqlite3_vtab_in, so each value reaches generate in its
		// own call, as for columns that are not OPTIMIZED.
		p.Constraints = append(p.Constraints, planConstraint{Name: col.name, Op: op})
		info.Constraints[i].ArgIndex = argIndex
		argIndex++
	}

	// Record the used columns. Bit 63 of colUsed stands for every column
	// from the 64th on, and an alias counts as its target column.
	bitset := info.ColUsed
	used := map[string]bool{}
	if bitset != 0 {
		for i, col := range columns {
			bit := min(i, 63)
			if bitset&(1<<bit) == 0 {
				continue
			}
			name := col.name
			if col.target >= 0 {
				bitset &^= 1 << bit
				bitset |= 1 << min(col.target, 63)
				name = columns[col.target].name
			}
			used[name] = true
			if col.options&osqueryschema.OptionRequired != 0 {
				hasRequiredColumns = true
			}
		}
	}
	// NOTE: osqueryd lists colsUsed in std::unordered_set order, which
	// depends on its C++ library; here they follow the column order.
	p.ColsUsed = []string{}
	for _, col := range columns {
		if used[col.name] && col.target < 0 {
			p.ColsUsed = append(p.ColsUsed, col.name)
		}
	}
	p.Bitset = bitset

	if hasRequiredColumns && !hasRequiredConstraints {
		cost = maxIndexCost
	}

	encoded, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the plan of table %s: %w", t.def.name, err)
	}
	info.IdxStr = string(encoded)
	info.EstimatedCost = cost
	return nil
}

func (t *table) Open() (vtab.Cursor, error) {
	return &cursor{def: t.def}, nil
}

func (t *table) Disconnect() error { return nil }

func (t *table) Destroy() error { return nil }

// cursor is one scan of a virtual table (sqlite3_vtab_cursor).
type cursor struct {
	def  *virtualTable
	rows []map[string]string
	pos  int
}

// Filter follows osqueryd's xFilter. Every column gets a constraint list
// with its affinity, and each constraint value is read as text, dropping
// empty and NULL values. A table with a REQUIRED column fails unless the
// plan constrains one. generate receives the context as queryContextJSON
// serialises it.
func (c *cursor) Filter(_ int, idxStr string, vals []vtab.Value) error {
	var p plan
	if err := json.Unmarshal([]byte(idxStr), &p); err != nil {
		return fmt.Errorf("decoding the plan of table %s: %w", c.def.name, err)
	}

	lists := map[string]*constraintList{}
	requiredSatisfied := true
	required := map[string]bool{}
	for _, col := range c.def.columns {
		lists[col.name] = &constraintList{affinity: col.sqlType}
		if col.options&osqueryschema.OptionRequired != 0 {
			requiredSatisfied = false
			required[col.name] = true
		}
	}

	for i, v := range vals {
		if i >= len(p.Constraints) {
			break
		}
		expr, ok := sqliteText(v)
		if !ok || expr == "" {
			continue
		}
		con := p.Constraints[i]
		lists[con.Name].items = append(lists[con.Name].items, constraintItem{op: con.Op, expr: expr})
	}
	for _, con := range p.Constraints {
		if required[con.Name] {
			requiredSatisfied = true
		}
	}
	if !requiredSatisfied {
		// The text is osqueryd's, which is why it starts upper-case.
		//lint:ignore ST1005 the message is osqueryd's own text
		return fmt.Errorf("Table %s was queried without a required column in the WHERE clause", c.def.name)
	}

	contextJSON := queryContextJSON(lists, p.ColsUsed, p.Bitset)
	rows, err := c.def.generate(c.def.engine.ctx, contextJSON)
	if err != nil {
		return err
	}
	c.rows = rows
	c.pos = 0
	return nil
}

func (c *cursor) Next() error {
	c.pos++
	return nil
}

//lint:ignore ST1003 modernc.org/sqlite/vtab's Cursor interface names the method Eof
func (c *cursor) Eof() bool {
	return c.pos >= len(c.rows)
}

// Column converts the current row's value as DynamicTableRow::get_column
// does; an alias column returns its target's value.
func (c *cursor) Column(i int) (vtab.Value, error) {
	if i < 0 || i >= len(c.def.columns) || c.pos >= len(c.rows) {
		return nil, fmt.Errorf("table %s has no column %d in row %d", c.def.name, i, c.pos)
	}
	col := c.def.columns[i]
	if col.target >= 0 {
		col = c.def.columns[col.target]
	}
	value, ok := c.rows[c.pos][col.name]
	return toSQLiteValue(col.sqlType, value, ok), nil
}

// Rowid returns the row's "rowid" value when the table returns one, as
// DynamicTableRow::get_rowid does, and the row's position otherwise.
func (c *cursor) Rowid() (int64, error) {
	value, ok := c.rows[c.pos]["rowid"]
	if !ok {
		return int64(c.pos), nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("table %s returned invalid rowid %q", c.def.name, value)
	}
	return n, nil
}

func (c *cursor) Close() error {
	c.rows = nil
	return nil
}
