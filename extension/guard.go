package extension

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"
)

// guardedTable wraps a table plugin so that each generate call from
// osqueryd ends within a deadline, at most a fixed number of calls run at
// once, and a panic becomes an error for osqueryd instead of ending the
// process. Other actions ("columns") pass through unchanged.
type guardedTable struct {
	*table.Plugin
	timeout time.Duration
	// slots is shared by all tables of the extension. A call holds a slot
	// until its generate returns, even after the call gave up waiting, so
	// the cap also bounds the generates still running after a timeout.
	slots  chan struct{}
	logger *slog.Logger
}

func newGuardedTable(plugin *table.Plugin, timeout time.Duration, slots chan struct{}, logger *slog.Logger) *guardedTable {
	return &guardedTable{
		Plugin:  plugin,
		timeout: timeout,
		slots:   slots,
		logger:  logger.With("table_name", plugin.Name()),
	}
}

// Call serves one request from osqueryd.
func (g *guardedTable) Call(ctx context.Context, request osquery.ExtensionPluginRequest) osquery.ExtensionResponse {
	if request["action"] != "generate" {
		return g.Plugin.Call(ctx, request)
	}

	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	started := time.Now()

	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return g.failure(ctx, started, fmt.Sprintf(
			"table %s could not start within %s because %d calls of this extension are still running; retry later",
			g.Name(), g.timeout, cap(g.slots)))
	}

	// The buffer lets the goroutine finish after Call has given up on it.
	responses := make(chan osquery.ExtensionResponse, 1)
	go func() {
		defer func() { <-g.slots }()
		defer func() {
			if recovered := recover(); recovered != nil {
				g.logger.ErrorContext(ctx, "table generate panicked", "panic", fmt.Sprint(recovered), "stack", string(debug.Stack()))
				responses <- errorResponse(fmt.Sprintf("table %s failed with an internal error: %v", g.Name(), recovered))
			}
		}()
		responses <- g.Plugin.Call(ctx, request)
	}()

	select {
	case response := <-responses:
		if response.Status != nil && response.Status.Code != 0 {
			g.logger.WarnContext(ctx, "table generate failed", "error", response.Status.Message, "elapsed", time.Since(started))
			return response
		}
		g.logger.DebugContext(ctx, "table generated", "rows", len(response.Response), "elapsed", time.Since(started))
		return response
	case <-ctx.Done():
		return g.failure(ctx, started, fmt.Sprintf(
			"table %s did not finish within %s; narrow the query with WHERE time >= ... or raise --generate-timeout",
			g.Name(), g.timeout))
	}
}

// failure logs a call that the wrapper itself ends and returns the error
// response for osqueryd.
func (g *guardedTable) failure(ctx context.Context, started time.Time, message string) osquery.ExtensionResponse {
	g.logger.WarnContext(ctx, "table generate failed", "error", message, "elapsed", time.Since(started))
	return errorResponse(message)
}

// errorResponse builds a failed response in the form osquery-go's table
// plugin uses for generate errors, which osqueryd shows as the query error.
func errorResponse(message string) osquery.ExtensionResponse {
	return osquery.ExtensionResponse{
		Status: &osquery.ExtensionStatus{Code: 1, Message: "error generating table: " + message},
	}
}
