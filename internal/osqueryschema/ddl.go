package osqueryschema

import (
	"slices"
	"strings"
)

// collations maps each collation option to the name osquery declares.
var collations = []struct {
	option int
	name   string
}{
	{OptionCollateBinary, "BINARY"},
	{OptionCollateNoCase, "NOCASE"},
	{OptionCollateRTrim, "RTRIM"},
	{OptionCollateVersion, "VERSION"},
	{OptionCollateVersionArch, "VERSION_ARCH"},
	{OptionCollateVersionDpkg, "VERSION_DPKG"},
	{OptionCollateVersionRhel, "VERSION_RHEL"},
}

// Collation returns the collating sequence the column's options select, or
// "" for SQLite's default. Like osquery's columnDefinition, the lowest set
// collation bit wins.
func (c Column) Collation() string {
	for _, coll := range collations {
		if c.Options&coll.option != 0 {
			return coll.name
		}
	}
	return ""
}

// CreateTableSQL renders the statement osqueryd passes to
// sqlite3_declare_vtab for a core (non-extension) table, for example
// "CREATE TABLE time(`weekday` TEXT, ...)".
func (t Table) CreateTableSQL() string {
	return "CREATE TABLE " + t.Name + ColumnDefinition(t.Columns, false)
}

// ColumnDefinition renders the parenthesised column list that osquery's
// columnDefinition (osquery/core/tables.cpp) builds from a table's route
// information, with column aliases appended as hidden columns:
//   - INDEX and ADDITIONAL columns form a PRIMARY KEY, and the table is
//     declared WITHOUT ROWID unless it belongs to an extension;
//   - if no column is INDEX, every column joins the PRIMARY KEY, so that an
//     ADDITIONAL constraint cannot create duplicate rowids;
//   - HIDDEN and COLLATE follow the column type.
//
// Column aliases are ordered by target column name and then alias name, as
// osquery's std::map-based ColumnAliasSet orders them.
func ColumnDefinition(columns []Column, extension bool) string {
	all := withAliasColumns(columns)

	indexed := false
	withoutRowID := false
	var keys []string
	var b strings.Builder
	b.WriteString("(")
	for i, c := range all {
		b.WriteString("`" + c.Name + "` " + c.SQLType())
		if c.Options&OptionIndex != 0 {
			indexed = true
		}
		if c.Options&(OptionIndex|OptionAdditional) != 0 {
			keys = append(keys, c.Name)
			withoutRowID = true
		}
		if c.Options&OptionHidden != 0 {
			b.WriteString(" HIDDEN")
		}
		if coll := c.Collation(); coll != "" {
			b.WriteString(" COLLATE " + coll)
		}
		if i < len(all)-1 {
			b.WriteString(", ")
		}
	}

	if !indexed && withoutRowID {
		keys = keys[:0]
		for _, c := range all {
			keys = append(keys, c.Name)
		}
	}
	if len(keys) > 0 {
		b.WriteString(", PRIMARY KEY (`" + strings.Join(keys, "`, `") + "`)")
	}

	// Extension tables keep their rowid because osquery lets them be
	// written to, and UPDATE and DELETE address rows by rowid.
	if extension {
		withoutRowID = false
	}
	b.WriteString(")")
	if withoutRowID {
		b.WriteString(" WITHOUT ROWID")
	}
	return b.String()
}

// AliasColumn is a column alias: a hidden column that returns the value of
// its target column.
type AliasColumn struct {
	Name   string
	Target string
}

// AliasColumns returns the table's column aliases in the order osquery
// appends them after the real columns.
func AliasColumns(columns []Column) []AliasColumn {
	var out []AliasColumn
	for _, c := range columns {
		for _, a := range c.Aliases {
			out = append(out, AliasColumn{Name: a, Target: c.Name})
		}
	}
	slices.SortFunc(out, func(a, b AliasColumn) int {
		if n := strings.Compare(a.Target, b.Target); n != 0 {
			return n
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// withAliasColumns appends one hidden column per alias, typed like its
// target, as osquery's xCreate does when it declares a table.
func withAliasColumns(columns []Column) []Column {
	aliases := AliasColumns(columns)
	if len(aliases) == 0 {
		return columns
	}
	out := slices.Clone(columns)
	for _, a := range aliases {
		target, _ := Table{Columns: columns}.Column(a.Target)
		out = append(out, Column{Name: a.Name, Type: target.SQLType(), Options: OptionHidden})
	}
	return out
}
