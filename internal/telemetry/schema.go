package telemetry

import (
	"slices"
	"sync"

	"github.com/svclaunch/svclaunch/internal/osqueryschema"
)

// resultsTables are the osquery tables that results-log rows may load into.
var resultsTables = []string{"windows_events", "process_etw_events", "process_events", "socket_events", "processes"}

// knownTables returns resultsTables with their columns from osqueryschema:
// every column on any platform (aliases included), and per platform the
// columns SELECT * returns there. It is computed once.
var knownTables = sync.OnceValue(func() []knownTable {
	out := make([]knownTable, 0, len(resultsTables))
	for _, name := range resultsTables {
		table, ok := osqueryschema.Lookup(name)
		if !ok {
			continue
		}

		known := knownTable{name: name}
		for _, column := range table.Columns {
			known.columns = append(known.columns, column.Name)
			known.columns = append(known.columns, column.Aliases...)
		}
		for _, platform := range table.Platforms {
			var visible []string
			for _, column := range table.ForPlatform(platform).Columns {
				if !column.Hidden() {
					visible = append(visible, column.Name)
				}
			}
			if !slices.ContainsFunc(known.visible, func(v []string) bool { return slices.Equal(v, visible) }) {
				known.visible = append(known.visible, visible)
			}
		}
		out = append(out, known)
	}
	return out
})
