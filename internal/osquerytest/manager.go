package osquerytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/osquery/osquery-go/gen/osquery"
)

// register runs osqueryd's registerExtension: it checks the registration,
// attaches the new tables to the engine and records the extension.
func (s *Server) register(ctx context.Context, info *osquery.InternalExtensionInfo, routes osquery.ExtensionRegistry) *osquery.ExtensionStatus {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	s.mu.Lock()
	if message := s.registry.rejection(info, routes); message != "" {
		s.mu.Unlock()
		s.log.Warn("extension registration rejected", "name", info.GetName(), "reason", message)
		return failed(message)
	}
	uuid := s.registry.newUUID()
	newTables := map[string]osquery.ExtensionPluginResponse{}
	for name, tableRoutes := range routes["table"] {
		if !s.registry.attached[name] {
			newTables[name] = tableRoutes
		}
	}
	s.mu.Unlock()

	// A table attached for an earlier registration of the same name is
	// reused: its generate function looks up the current owner on each scan.
	// NOTE: the columns of that earlier registration stay in force, so an
	// extension restarted with different columns keeps the old ones.
	for _, name := range slices.Sorted(maps.Keys(newTables)) {
		if err := s.attachTable(name, newTables[name]); err != nil {
			s.log.Error("attaching extension table failed", "name", info.GetName(), "table", name, "error", err)
			return failed("Failed adding registry: " + err.Error())
		}
	}

	// The rows go in before the registry changes, so that a caller of
	// WaitForExtension finds them.
	row := extensionRow(s.path, uuid, info)
	if err := s.engine.Insert(ctx, "osquery_extensions", []map[string]string{row}); err != nil {
		s.log.Error("adding the osquery_extensions row failed", "uuid", uuid, "error", err)
	}
	if err := s.engine.Insert(ctx, "osquery_registry", pluginRows(uuid, routes)); err != nil {
		s.log.Error("adding the osquery_registry rows failed", "uuid", uuid, "error", err)
	}

	s.mu.Lock()
	s.registry.add(uuid, info, routes)
	s.notifyLocked()
	s.mu.Unlock()

	s.log.Info("extension registered", "uuid", uuid, "name", info.GetName(), "version", info.GetVersion(), "sdk_version", info.GetSdkVersion())
	return &osquery.ExtensionStatus{Code: codeSuccess, Message: "OK", UUID: uuid}
}

// attachTable attaches an extension table to the engine. The caller holds
// writeMu.
func (s *Server) attachTable(name string, routes osquery.ExtensionPluginResponse) error {
	columns, err := tableColumns(routes)
	if err != nil {
		return err
	}
	if err := s.engine.AttachTable(name, columns, s.generateFunc(name)); err != nil {
		return err
	}

	s.mu.Lock()
	s.registry.attached[name] = true
	s.mu.Unlock()
	return nil
}

// remove drops a registered extension and its plugins, logs the reason and
// reports whether the extension was registered.
func (s *Server) remove(ctx context.Context, uuid osquery.ExtensionRouteUUID, reason string) bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	s.mu.Lock()
	ext, registered := s.registry.extensions[uuid]
	s.mu.Unlock()
	if !registered {
		return false
	}

	// Deleting only this extension's rows keeps the tables complete for
	// queries that run meanwhile.
	id := strconv.FormatInt(int64(uuid), 10)
	if _, err := s.engine.QueryRows(ctx, "DELETE FROM osquery_extensions WHERE uuid = "+id); err != nil {
		s.log.Error("deleting the osquery_extensions row failed", "uuid", uuid, "error", err)
	}
	if _, err := s.engine.QueryRows(ctx, "DELETE FROM osquery_registry WHERE owner_uuid = "+id); err != nil {
		s.log.Error("deleting the osquery_registry rows failed", "uuid", uuid, "error", err)
	}

	s.mu.Lock()
	s.registry.remove(uuid)
	s.notifyLocked()
	s.mu.Unlock()

	s.log.Info("extension removed", "uuid", uuid, "name", ext.info.GetName(), "reason", reason)
	return true
}

// call routes a registry call the way RegistryInterface::call does: an item
// that an extension registered goes to that extension, and a core table runs
// on the engine. Failures come back as a status with osqueryd's message.
func (s *Server) call(ctx context.Context, registryName, item string, request osquery.ExtensionPluginRequest) *osquery.ExtensionResponse {
	s.mu.Lock()
	_, knownRegistry := s.registry.items[registryName]
	uuid, external := s.registry.owner(registryName, item)
	_, core := s.registry.items[registryName][item]
	s.mu.Unlock()

	switch {
	case !knownRegistry:
		// osqueryd throws here, and its Thrift server fails the call.
		return failedResponse("Unknown registry requested: " + registryName)
	case external:
		return s.callExtension(ctx, uuid, registryName, item, request)
	case core && registryName == "table":
		return s.callCoreTable(ctx, item, request)
	case core:
		// NOTE: the stand-in has no core config, logger or distributed
		// plugins to run.
		return failedResponse("Cannot call registry item: " + item + " (the osquery stand-in has no core " + registryName + " plugins)")
	default:
		return failedResponse("Cannot call registry item: " + item)
	}
}

// callCoreTable runs the "generate" and "columns" actions of a core table on
// the engine, with TablePlugin::call's messages for other actions.
// NOTE: generate ignores the request's query context and returns every row.
func (s *Server) callCoreTable(ctx context.Context, table string, request osquery.ExtensionPluginRequest) *osquery.ExtensionResponse {
	action, ok := request["action"]
	if !ok {
		return failedResponse("Table plugins must include a request action")
	}

	var rows []map[string]string
	var err error
	switch action {
	case "generate":
		rows, err = s.engine.QueryRows(ctx, "SELECT * FROM "+quoteIdentifier(table))
	case "columns":
		rows, err = s.coreTableRoutes(ctx, table)
	default:
		return failedResponse("Unknown table plugin action: " + action)
	}
	if err != nil {
		return failedResponse(sqliteMessage(err))
	}
	return succeededResponse(rows)
}

// coreTableRoutes returns a core table's columns in the route format of
// TablePlugin::routeInfo. SQLite does not store column options, so "op"
// only distinguishes hidden (16) from plain (0) columns.
func (s *Server) coreTableRoutes(ctx context.Context, table string) ([]map[string]string, error) {
	infos, err := s.engine.QueryRows(ctx, "PRAGMA table_xinfo("+quoteIdentifier(table)+")")
	if err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("no such table: %s", table)
	}

	routes := make([]map[string]string, 0, len(infos))
	for _, info := range infos {
		op := "0"
		if info["hidden"] != "" && info["hidden"] != "0" {
			op = "16"
		}
		routes = append(routes, map[string]string{"id": "column", "name": info["name"], "type": info["type"], "op": op})
	}
	return routes, nil
}

// queryColumns returns, for GetQueryColumns, the result columns of sql and
// their declared types.
func (s *Server) queryColumns(ctx context.Context, sql string) ([]map[string]string, error) {
	// TODO: needs an engine call that prepares sql and returns
	// sqlite3_column_decltype for each result column.
	return nil, errors.New("getting query columns: not supported by the osquery stand-in")
}

// listCoreTables returns the names of the tables the engine contains.
func (s *Server) listCoreTables(ctx context.Context) ([]string, error) {
	rows, err := s.engine.QueryRows(ctx, `SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return nil, fmt.Errorf("listing the engine's tables: %w", err)
	}
	names := make([]string, 0, len(rows))
	for _, row := range rows {
		names = append(names, row["name"])
	}
	return names, nil
}

// writeDiscoveryTables fills osquery_extensions and osquery_registry from
// the registry. Start calls it before serving, and later changes add and delete
// single rows.
func (s *Server) writeDiscoveryTables(ctx context.Context) error {
	s.mu.Lock()
	extensions := s.registry.extensionRows(s.path, s.opts.Version)
	plugins := s.registry.registryRows()
	s.mu.Unlock()

	if err := s.replaceRows(ctx, "osquery_extensions", extensions); err != nil {
		return err
	}
	return s.replaceRows(ctx, "osquery_registry", plugins)
}

// replaceRows empties one of the engine's stored tables and inserts rows.
func (s *Server) replaceRows(ctx context.Context, table string, rows []map[string]string) error {
	if _, err := s.engine.QueryRows(ctx, "DELETE FROM "+quoteIdentifier(table)); err != nil {
		return fmt.Errorf("emptying %s: %w", table, err)
	}
	if err := s.engine.Insert(ctx, table, rows); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// quoteIdentifier quotes a table name for SQLite.
func quoteIdentifier(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
