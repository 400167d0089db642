package hunt

import (
	"context"
	"fmt"
	"strconv"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/internal/engine"
)

// columnHidden is osquery's HIDDEN column option bit.
const columnHidden = 16

// attachPlugin makes an extension table plugin queryable in the engine. It
// goes through the plugin's Thrift-facing side, the "columns" routes and the
// "generate" call with osquery's query-context JSON, so the table receives
// exactly the requests osqueryd would send it. It returns the names of the
// columns that SELECT * shows, in the table's order.
func attachPlugin(e *engine.Engine, plugin *table.Plugin) ([]string, error) {
	routes := plugin.Routes()
	columns := make([]engine.Column, 0, len(routes))
	var visible []string
	for _, route := range routes {
		options, err := strconv.Atoi(route["op"])
		if err != nil {
			return nil, fmt.Errorf("attaching table %s: column %q has invalid options %q", plugin.Name(), route["name"], route["op"])
		}
		columns = append(columns, engine.Column{Name: route["name"], Type: route["type"], Options: options})
		if options&columnHidden == 0 {
			visible = append(visible, route["name"])
		}
	}

	generate := func(ctx context.Context, queryContextJSON string) ([]map[string]string, error) {
		response := plugin.Call(ctx, osquery.ExtensionPluginRequest{
			"action":  "generate",
			"context": queryContextJSON,
		})
		if response.Status == nil {
			return nil, fmt.Errorf("table %s returned no status", plugin.Name())
		}
		if response.Status.Code != 0 {
			return nil, fmt.Errorf("table %s: %s", plugin.Name(), response.Status.Message)
		}
		return response.Response, nil
	}

	if err := e.AttachTable(plugin.Name(), columns, generate); err != nil {
		return nil, err
	}
	return visible, nil
}
