package osquerytest

import (
	"context"

	"github.com/osquery/osquery-go/gen/osquery"
)

// Status codes of osquery's ExtensionCode enum.
const (
	codeSuccess = int32(osquery.ExtensionCode_EXT_SUCCESS)
	codeFailed  = int32(osquery.ExtensionCode_EXT_FAILED)
)

// handler implements the Thrift ExtensionManager service on a Server. Each
// method responds the way osqueryd's ExtensionManagerHandler
// (osquery/extensions/impl_thrift.cpp) does, including its status messages,
// because extensions and tests compare against them. The manager's own route
// UUID is 0.
type handler struct {
	server *Server
}

var _ osquery.ExtensionManager = (*handler)(nil)

// Ping responds to health checks from extensions.
func (h *handler) Ping(ctx context.Context) (*osquery.ExtensionStatus, error) {
	return &osquery.ExtensionStatus{Code: codeSuccess, Message: "pong", UUID: 0}, nil
}

// Call runs a registry plugin: an extension's plugin over Thrift, or a core
// table from the engine.
func (h *handler) Call(ctx context.Context, registryName string, item string, request osquery.ExtensionPluginRequest) (*osquery.ExtensionResponse, error) {
	return h.server.call(ctx, registryName, item, request), nil
}

// Shutdown does nothing: osqueryd's manager handler ignores shutdown
// requests, which are meant for extensions.
func (h *handler) Shutdown(ctx context.Context) error {
	return nil
}

// Extensions lists the registered extensions, without the core.
func (h *handler) Extensions(ctx context.Context) (osquery.InternalExtensionList, error) {
	s := h.server
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registry.list(), nil
}

// Options returns the osqueryd flags that extensions read, with the values
// this stand-in uses.
func (h *handler) Options(ctx context.Context) (osquery.InternalOptionList, error) {
	options := osquery.InternalOptionList{}
	for _, f := range h.server.flags() {
		options[f.name] = &osquery.InternalOptionInfo{Value: f.value, DefaultValue: f.defaultValue, Type: f.kind}
	}
	return options, nil
}

// RegisterExtension registers an extension and its plugins and attaches its
// tables to the engine.
func (h *handler) RegisterExtension(ctx context.Context, info *osquery.InternalExtensionInfo, registry osquery.ExtensionRegistry) (*osquery.ExtensionStatus, error) {
	if info == nil {
		info = osquery.NewInternalExtensionInfo()
	}
	return h.server.register(ctx, info, registry), nil
}

// DeregisterExtension removes an extension and its plugins.
func (h *handler) DeregisterExtension(ctx context.Context, uuid osquery.ExtensionRouteUUID) (*osquery.ExtensionStatus, error) {
	if !h.server.remove(ctx, uuid, "deregistered") {
		return failed("No extension UUID found"), nil
	}
	return &osquery.ExtensionStatus{Code: codeSuccess, Message: "OK", UUID: 0}, nil
}

// Query runs SQL on the engine. A failure returns status 1 with SQLite's
// error message, as sqlite3_errmsg gives it to osqueryd.
func (h *handler) Query(ctx context.Context, sql string) (*osquery.ExtensionResponse, error) {
	rows, err := h.server.engine.QueryRows(ctx, sql)
	if err != nil {
		h.server.log.Debug("query failed", "sql", sql, "error", err)
		return failedResponse(sqliteMessage(err)), nil
	}
	return succeededResponse(rows), nil
}

// GetQueryColumns returns one row per result column of the SQL, mapping the
// column name to its declared type.
func (h *handler) GetQueryColumns(ctx context.Context, sql string) (*osquery.ExtensionResponse, error) {
	columns, err := h.server.queryColumns(ctx, sql)
	if err != nil {
		return failedResponse(sqliteMessage(err)), nil
	}
	return succeededResponse(columns), nil
}

func failed(message string) *osquery.ExtensionStatus {
	return &osquery.ExtensionStatus{Code: codeFailed, Message: message, UUID: 0}
}

// failedResponse returns a response with status 1 and no rows, as osqueryd
// sends for a failed call or query.
func failedResponse(message string) *osquery.ExtensionResponse {
	return &osquery.ExtensionResponse{Status: failed(message), Response: osquery.ExtensionPluginResponse{}}
}

func succeededResponse(rows []map[string]string) *osquery.ExtensionResponse {
	if rows == nil {
		rows = []map[string]string{}
	}
	return &osquery.ExtensionResponse{
		Status:   &osquery.ExtensionStatus{Code: codeSuccess, Message: "OK", UUID: 0},
		Response: rows,
	}
}
