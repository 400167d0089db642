// Package osqueryschema describes osquery's own tables as data: the columns,
// types, options and descriptions of the spec files under osquery's specs/
// directory (osquery HEAD a5b14f63d, August 2026), for the tables svclaunch
// reads or that an osquery stand-in must offer.
//
// A table whose spec has per-platform extensions (extended_schema) is stored
// as the union of all platforms. Each extended column names its platforms,
// and ForPlatform applies what osquery's tools/codegen/gentable.py does at
// build time: columns of other platforms become hidden.
package osqueryschema

import (
	"slices"
	"strings"
)

// Column options, as the bitmask of osquery's ColumnOptions
// (osquery/core/sql/column.h) and osquery-go's column "op" values.
const (
	// OptionIndex marks a primary-key-like column; constraints on it reach
	// the table code.
	OptionIndex = 1
	// OptionRequired marks a column that must be constrained in the WHERE
	// clause, or osqueryd rejects the query.
	OptionRequired = 2
	// OptionAdditional marks a column whose constraints reach the table code
	// without making it an index.
	OptionAdditional = 4
	// OptionOptimized lets osqueryd pass IN (...) lists as one call.
	OptionOptimized = 8
	// OptionHidden keeps the column out of SELECT *.
	OptionHidden = 16
	// OptionCollateBinary and the options after it set the column's
	// collating sequence.
	OptionCollateBinary      = 32
	OptionCollateNoCase      = 64
	OptionCollateRTrim       = 128
	OptionCollateVersion     = 256
	OptionCollateVersionArch = 512
	OptionCollateVersionDpkg = 1024
	OptionCollateVersionRhel = 2048
)

// Table attributes, as osquery's TableAttributes (osquery/core/tables.h).
const (
	AttributeUtility    = 1
	AttributeCacheable  = 2
	AttributeEventBased = 4
	AttributeUserBased  = 8
)

// Platform names used in Column.Platforms, as gentable.py's platform lists.
const (
	PlatformLinux   = "linux"
	PlatformDarwin  = "darwin"
	PlatformWindows = "windows"
)

// Column is one column of an osquery table.
type Column struct {
	// Name is the column name.
	Name string
	// Type is the spec's type name: TEXT, INTEGER, BIGINT, UNSIGNED BIGINT,
	// DOUBLE, BLOB or DATETIME. SQLType gives the type osquery declares.
	Type string
	// Options is the ColumnOptions bitmask (OptionIndex and the others).
	Options int
	// Description is the spec's column description.
	Description string
	// Aliases are other names osquery accepts for this column. osquery adds
	// them as hidden columns that return this column's value.
	Aliases []string
	// Platforms lists the platforms of a column from extended_schema; nil
	// means the column exists on every platform of the table.
	Platforms []string
}

// SQLType returns the type name osquery uses when it declares the column to
// SQLite and as the affinity of constraints. DATETIME and DATE are stored as
// TEXT (tools/codegen/gentable.py: DATETIME = DataType("TEXT_TYPE")).
func (c Column) SQLType() string {
	switch c.Type {
	case "DATETIME", "DATE":
		return "TEXT"
	}
	return c.Type
}

// Hidden reports whether SELECT * leaves the column out.
func (c Column) Hidden() bool {
	return c.Options&OptionHidden != 0
}

// Table is one osquery table.
type Table struct {
	// Name is the table name.
	Name string
	// Description is the spec's table description.
	Description string
	// Attributes is the TableAttributes bitmask (AttributeEventBased and
	// the others).
	Attributes int
	// Platforms lists the platforms osquery builds the table for.
	Platforms []string
	// Columns are in spec order, extended columns last.
	Columns []Column
}

// EventBased reports whether the table is filled by an event subscriber.
func (t Table) EventBased() bool {
	return t.Attributes&AttributeEventBased != 0
}

// Column returns the column with the given name.
func (t Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ForPlatform returns the table as osquery builds it for one platform: as
// gentable.py's extended_schema does, columns of other platforms stay in the
// table but become hidden.
func (t Table) ForPlatform(platform string) Table {
	out := t.clone()
	for i, c := range out.Columns {
		if c.Platforms != nil && !slices.Contains(c.Platforms, platform) {
			out.Columns[i].Options |= OptionHidden
		}
	}
	return out
}

func (t Table) clone() Table {
	out := t
	out.Platforms = slices.Clone(t.Platforms)
	out.Columns = make([]Column, len(t.Columns))
	for i, c := range t.Columns {
		c.Aliases = slices.Clone(c.Aliases)
		c.Platforms = slices.Clone(c.Platforms)
		out.Columns[i] = c
	}
	return out
}

// Lookup returns the table with the given name.
func Lookup(name string) (Table, bool) {
	for _, t := range tables {
		if t.Name == name {
			return t.clone(), true
		}
	}
	return Table{}, false
}

// All returns every table, sorted by name.
func All() []Table {
	out := make([]Table, 0, len(tables))
	for _, t := range tables {
		out = append(out, t.clone())
	}
	slices.SortFunc(out, func(a, b Table) int { return strings.Compare(a.Name, b.Name) })
	return out
}
