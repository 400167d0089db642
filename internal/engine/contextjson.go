package engine

import (
	"slices"
	"strconv"
	"strings"
)

// constraintList is osquery's ConstraintList: a column's affinity and the
// (operator, expression) pairs applied to it.
type constraintList struct {
	affinity string
	items    []constraintItem
}

type constraintItem struct {
	op   int
	expr string
}

// queryContextJSON serialises a query context exactly as osquery's
// TablePlugin::setRequestFromContext and ConstraintList::serialize
// (osquery/core/tables.cpp) do with rapidjson. The output is compact. The
// constraints array has one entry per column of the table, including
// columns with an empty list, sorted by name as osquery's std::map sorts
// them, with the keys name, list and affinity in that order. colsUsed and
// colsUsedBitset follow. For example:
//
//	{"constraints":[{"name":"time","list":[{"op":32,"expr":"5"}],"affinity":"BIGINT"}],"colsUsed":["time"],"colsUsedBitset":1}
func queryContextJSON(lists map[string]*constraintList, colsUsed []string, bitset uint64) string {
	names := make([]string, 0, len(lists))
	for name := range lists {
		names = append(names, name)
	}
	slices.Sort(names)

	var b strings.Builder
	b.WriteString(`{"constraints":[`)
	for i, name := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		list := lists[name]
		b.WriteString(`{"name":`)
		writeJSONString(&b, name)
		b.WriteString(`,"list":[`)
		for j, item := range list.items {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"op":` + strconv.Itoa(item.op) + `,"expr":`)
			writeJSONString(&b, item.expr)
			b.WriteByte('}')
		}
		b.WriteString(`],"affinity":`)
		writeJSONString(&b, list.affinity)
		b.WriteByte('}')
	}
	b.WriteString(`],"colsUsed":[`)
	for i, name := range colsUsed {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, name)
	}
	b.WriteString(`],"colsUsedBitset":` + strconv.FormatUint(bitset, 10) + `}`)
	return b.String()
}

// writeJSONString writes s as rapidjson's Writer does: only '"', '\\' and
// control characters are escaped, with short forms for \b \f \n \r \t and
// upper-case \u00XX for the rest. Other bytes, including invalid UTF-8, are
// copied unchanged.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xF])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
