package remoteservicelaunches_test

import (
	"encoding/json"
	"testing"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

func TestColumnsOrderAndTypes(t *testing.T) {
	t.Parallel()

	want := []struct {
		name string
		kind table.ColumnType
	}{
		{"time", table.ColumnTypeBigInt}, {"datetime", table.ColumnTypeText}, {"host", table.ColumnTypeText},
		{"pid", table.ColumnTypeBigInt}, {"path", table.ColumnTypeText}, {"cmdline", table.ColumnTypeText},
		{"username", table.ColumnTypeText}, {"parent", table.ColumnTypeBigInt}, {"parent_path", table.ColumnTypeText},
		{"connection_time", table.ColumnTypeBigInt}, {"connection_datetime", table.ColumnTypeText},
		{"protocol", table.ColumnTypeText}, {"local_address", table.ColumnTypeText}, {"local_port", table.ColumnTypeInteger},
		{"remote_address", table.ColumnTypeText}, {"remote_port", table.ColumnTypeInteger}, {"delay_ms", table.ColumnTypeBigInt},
		{"time_precision", table.ColumnTypeText}, {"connection_count", table.ColumnTypeInteger},
		{"process_sources", table.ColumnTypeText}, {"connection_sources", table.ColumnTypeText},
	}

	columns := remoteservicelaunches.Columns()
	require.Len(t, columns, len(want))
	for i, c := range columns {
		require.Equal(t, want[i].name, c.Name, "column %d", i)
		require.Equal(t, want[i].kind, c.Type, "column %s", c.Name)
		require.NotEmpty(t, c.Description, "column %s", c.Name)

		// Only time is ADDITIONAL (4), so osquery passes its constraints.
		if c.Name == "time" {
			require.Equal(t, uint8(4), c.Options())
		} else {
			require.Equal(t, uint8(0), c.Options(), "column %s", c.Name)
		}
	}
}

func TestPluginSpec(t *testing.T) {
	t.Parallel()

	plugin := remoteservicelaunches.New(remoteservicelaunches.Config{}).Plugin()
	spec := plugin.Spec()
	require.Equal(t, "remote_service_launches", spec.Name)
	require.NotEmpty(t, spec.Description)
	require.Equal(t, "https://car.mitre.org/analytics/CAR-2014-03-005/", spec.Url)
	require.NotEmpty(t, spec.Examples)
	require.NotEmpty(t, spec.Notes)
	require.ElementsMatch(t, []string{"windows", "linux", "darwin"}, jsonStrings(t, spec.Platforms))

	routes := plugin.Routes()
	require.Len(t, routes, len(remoteservicelaunches.Columns()))
	require.Equal(t, map[string]string{"id": "column", "name": "time", "type": "BIGINT", "op": "4"}, routes[0])
}

// jsonStrings converts a slice of a string type to []string through JSON,
// because osquery-go's platform type is unexported.
func jsonStrings(t *testing.T, v any) []string {
	t.Helper()

	encoded, err := json.Marshal(v)
	require.NoError(t, err)
	var out []string
	require.NoError(t, json.Unmarshal(encoded, &out))
	return out
}
