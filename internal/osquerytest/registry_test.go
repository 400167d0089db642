package osquerytest

import (
	"testing"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
)

func TestVersionAtLeast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sdk  string
		want bool
	}{
		{"", true},
		{"0.0.0", true},
		{"1.7.7", true},
		{"1.7.6", false},
		{"1.8", true},
		{"1.6.9", false},
		{"2", true},
		{"5.23.1", true},
		{"1.7.7.1", true},
		{"1.a.0", false},
		{"1.a", true},
		{"0.9.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.sdk, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, versionAtLeast(minSDKVersion, tt.sdk))
		})
	}
}

func TestTableColumnsFromRoutes(t *testing.T) {
	t.Parallel()
	routes := osquery.ExtensionPluginResponse{
		{"id": "column", "name": "time", "type": "BIGINT", "op": "4"},
		{"id": "column", "name": "host", "type": "TEXT", "op": "0"},
		{"id": "column", "name": "odd", "type": "TEXT", "op": "not a number"},
		{"id": "alias", "alias": "other_name"},
		{"id": "attributes", "attributes": "0"},
	}

	columns, err := tableColumns(routes)

	require.NoError(t, err)
	require.Equal(t, []engine.Column{
		{Name: "time", Type: "BIGINT", Options: 4},
		{Name: "host", Type: "TEXT", Options: 0},
		{Name: "odd", Type: "TEXT", Options: 0},
	}, columns)
}

func TestTableColumnsWithoutColumns(t *testing.T) {
	t.Parallel()
	_, err := tableColumns(osquery.ExtensionPluginResponse{{"id": "attributes", "attributes": "0"}})
	require.ErrorContains(t, err, "no columns")
}

func TestRegistryRowsOrder(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	r.add(7, &osquery.InternalExtensionInfo{Name: "ext"}, osquery.ExtensionRegistry{
		"logger": {"ext_logger": {}},
	})

	var loggers []map[string]string
	for _, row := range r.registryRows() {
		if row["registry"] == "logger" {
			loggers = append(loggers, row)
		}
	}

	require.Equal(t, []map[string]string{
		{"registry": "logger", "name": "aws_firehose", "owner_uuid": "0", "internal": "0", "active": "0"},
		{"registry": "logger", "name": "aws_kinesis", "owner_uuid": "0", "internal": "0", "active": "0"},
		{"registry": "logger", "name": "filesystem", "owner_uuid": "0", "internal": "0", "active": "1"},
		{"registry": "logger", "name": "stdout", "owner_uuid": "0", "internal": "0", "active": "0"},
		{"registry": "logger", "name": "tls", "owner_uuid": "0", "internal": "0", "active": "0"},
		{"registry": "logger", "name": "ext_logger", "owner_uuid": "7", "internal": "0", "active": "0"},
	}, loggers)
}
