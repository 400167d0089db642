// Package osq defines the narrow interface through which svclaunch runs SQL:
// osquery itself over its extension socket, or the embedded engine that holds
// recorded telemetry in osquery's schemas.
package osq

import "context"

// Querier runs one SQL statement and returns its rows with every value as a
// string, the way osquery's extension API returns them (NULL becomes "").
type Querier interface {
	QueryRows(ctx context.Context, sql string) ([]map[string]string, error)
}
