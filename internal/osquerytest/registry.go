package osquerytest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/osquery/osquery-go/gen/osquery"

	"github.com/svclaunch/svclaunch/internal/engine"
)

// coreRegistries lists osqueryd's registry names (the CREATE_REGISTRY and
// CREATE_LAZY_REGISTRY calls in osquery/). RegisterExtension rejects routes
// for any other registry with "Unknown registry".
var coreRegistries = []string{
	"config", "config_parser", "database", "distributed", "enroll",
	"event_publisher", "event_subscriber", "logger", "numeric_monitoring",
	"sql", "table",
}

// corePlugins lists the non-table plugins that osqueryd builds on Linux,
// macOS and Windows alike, from the REGISTER calls under plugins/.
// NOTE: platform-specific plugins (syslog, windows_event_log, kafka_producer)
// and the database, enroll and event plugins are left out, so an extension
// may register those names here although osqueryd would reject them.
var corePlugins = map[string][]string{
	"config":      {"filesystem", "tls", "update"},
	"distributed": {"tls"},
	"logger":      {"aws_firehose", "aws_kinesis", "filesystem", "stdout", "tls"},
	"sql":         {"sql"},
}

// activePlugins contains osqueryd's default --config_plugin,
// --logger_plugin and --distributed_plugin values. osquery_registry marks a
// plugin active when it is its registry's active plugin or the registry has
// none.
var activePlugins = map[string]string{
	"config":      "filesystem",
	"distributed": "tls",
	"logger":      "filesystem",
}

// minSDKVersion is the oldest extension SDK osqueryd accepts
// (kSDKVersionChanges in osquery/extensions/interface.cpp).
const minSDKVersion = "1.7.7"

// extension is a registered extension.
type extension struct {
	uuid osquery.ExtensionRouteUUID
	info osquery.InternalExtensionInfo
}

// registry is the stand-in's copy of osqueryd's RegistryFactory and
// ExtensionManagerInterface state. It does no I/O, and Server guards it with
// its mutex.
type registry struct {
	extensions map[osquery.ExtensionRouteUUID]*extension

	// items maps a registry name and a plugin name to the plugin's owner,
	// 0 for a core plugin.
	items map[string]map[string]osquery.ExtensionRouteUUID

	// attached contains the extension tables already attached to the
	// engine. A table stays attached after its extension goes away, because
	// the engine cannot detach it.
	attached map[string]bool

	// failures counts failed health checks per extension, the way
	// ExtensionManagerWatcher::watch counts them.
	failures map[osquery.ExtensionRouteUUID]int
}

func newRegistry() *registry {
	r := &registry{
		extensions: map[osquery.ExtensionRouteUUID]*extension{},
		items:      map[string]map[string]osquery.ExtensionRouteUUID{},
		attached:   map[string]bool{},
		failures:   map[osquery.ExtensionRouteUUID]int{},
	}
	for _, name := range coreRegistries {
		r.items[name] = map[string]osquery.ExtensionRouteUUID{}
	}
	for registryName, plugins := range corePlugins {
		for _, plugin := range plugins {
			r.items[registryName][plugin] = 0
		}
	}
	for _, name := range coreTableNames {
		r.items["table"][name] = 0
	}
	return r
}

// addCoreTables adds table names that the engine contains to the core tables.
func (r *registry) addCoreTables(names []string) {
	for _, name := range names {
		r.items["table"][name] = 0
	}
}

// rejection returns the status message with which osqueryd rejects this
// registration, or "" when it may go ahead. The checks run in osqueryd's
// order: the extension name, the SDK version, plugin names across all
// registries, and then each registry in name order.
func (r *registry) rejection(info *osquery.InternalExtensionInfo, routes osquery.ExtensionRegistry) string {
	if r.nameRegistered(info.GetName()) {
		return "Duplicate extension registered"
	}

	if !versionAtLeast(minSDKVersion, info.GetSdkVersion()) {
		return "Incompatible extension SDK version"
	}

	for _, registryName := range slices.Sorted(maps.Keys(routes)) {
		for _, item := range slices.Sorted(maps.Keys(routes[registryName])) {
			if _, exists := r.items[registryName][item]; exists {
				return "Failed adding registry: Registry item " + item + " conflicts with another item of the same name."
			}
		}
	}

	for _, registryName := range slices.Sorted(maps.Keys(routes)) {
		if _, known := r.items[registryName]; !known {
			return "Failed adding registry: Unknown registry: " + registryName
		}

		// TablePlugin::addExternal needs the columns to attach the table.
		if registryName == "table" {
			for _, item := range slices.Sorted(maps.Keys(routes[registryName])) {
				if len(routes[registryName][item]) == 0 {
					return "Failed adding registry: Invalid route info"
				}
			}
		}
	}
	return ""
}

func (r *registry) nameRegistered(name string) bool {
	for _, ext := range r.extensions {
		if ext.info.GetName() == name {
			return true
		}
	}
	return false
}

// newUUID returns an unused route UUID. osqueryd draws a random 16-bit value
// and retries until it is unused. The stand-in also skips 0, which is the
// core's UUID.
func (r *registry) newUUID() osquery.ExtensionRouteUUID {
	for {
		uuid := osquery.ExtensionRouteUUID(rand.N(65535) + 1)
		if _, used := r.extensions[uuid]; !used {
			return uuid
		}
	}
}

// add records a registration that rejection accepted.
func (r *registry) add(uuid osquery.ExtensionRouteUUID, info *osquery.InternalExtensionInfo, routes osquery.ExtensionRegistry) {
	r.extensions[uuid] = &extension{uuid: uuid, info: *info}
	for registryName, items := range routes {
		for item := range items {
			r.items[registryName][item] = uuid
		}
	}
}

// remove drops an extension and its plugins and reports whether it was
// registered.
func (r *registry) remove(uuid osquery.ExtensionRouteUUID) bool {
	if _, ok := r.extensions[uuid]; !ok {
		return false
	}
	delete(r.extensions, uuid)
	delete(r.failures, uuid)
	for _, items := range r.items {
		maps.DeleteFunc(items, func(_ string, owner osquery.ExtensionRouteUUID) bool {
			return owner == uuid
		})
	}
	return true
}

// owner returns the extension that serves a registry item, or false when the
// item is a core plugin or unknown.
func (r *registry) owner(registryName, item string) (osquery.ExtensionRouteUUID, bool) {
	uuid, ok := r.items[registryName][item]
	if !ok || uuid == 0 {
		return 0, false
	}
	return uuid, true
}

func (r *registry) uuidByName(name string) (osquery.ExtensionRouteUUID, bool) {
	for _, ext := range r.extensions {
		if ext.info.GetName() == name {
			return ext.uuid, true
		}
	}
	return 0, false
}

// list returns the registered extensions the way osqueryd's extensions()
// call returns them: without the core.
func (r *registry) list() osquery.InternalExtensionList {
	list := osquery.InternalExtensionList{}
	for uuid, ext := range r.extensions {
		info := ext.info
		list[uuid] = &info
	}
	return list
}

// extensionPath returns the socket of the extension with this UUID, or the
// manager socket for UUID 0, as osqueryd's getExtensionSocket does.
func extensionPath(managerPath string, uuid osquery.ExtensionRouteUUID) string {
	if uuid == 0 {
		return managerPath
	}
	return fmt.Sprintf("%s.%d", managerPath, uuid)
}

// extensionRows returns the osquery_extensions rows, built as osqueryd's
// genOsqueryExtensions builds them from getExtensions.
func (r *registry) extensionRows(managerPath, version string) []map[string]string {
	// getExtensions adds the core as {"core", version, "0.0.0", sdk}, which
	// fills sdk_version with "0.0.0" (see extensionRow).
	rows := []map[string]string{{
		"uuid":        "0",
		"name":        "core",
		"version":     version,
		"sdk_version": "0.0.0",
		"path":        managerPath,
		"type":        "core",
	}}
	for _, uuid := range slices.Sorted(maps.Keys(r.extensions)) {
		info := r.extensions[uuid].info
		rows = append(rows, extensionRow(managerPath, uuid, &info))
	}
	return rows
}

// extensionRow returns an extension's osquery_extensions row.
func extensionRow(managerPath string, uuid osquery.ExtensionRouteUUID, info *osquery.InternalExtensionInfo) map[string]string {
	// getExtensions fills osquery's ExtensionInfo{name, version,
	// sdk_version, min_sdk_version} positionally with {name, version,
	// min_sdk_version, sdk_version}, so the sdk_version column shows the
	// extension's min_sdk_version. The stand-in keeps that swap.
	return map[string]string{
		"uuid":        strconv.FormatInt(int64(uuid), 10),
		"name":        info.GetName(),
		"version":     info.GetVersion(),
		"sdk_version": info.GetMinSdkVersion(),
		"path":        extensionPath(managerPath, uuid),
		"type":        "extension",
	}
}

// registryRows returns the osquery_registry rows, built as osqueryd's
// genOsqueryRegistry builds them: core plugins first in each registry, then
// the plugins that extensions registered.
func (r *registry) registryRows() []map[string]string {
	var rows []map[string]string
	for _, registryName := range slices.Sorted(maps.Keys(r.items)) {
		items := r.items[registryName]
		names := slices.SortedFunc(maps.Keys(items), func(a, b string) int {
			// Core plugins (owner 0) sort before extension plugins.
			if c := compareOwners(items[a], items[b]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, name := range names {
			rows = append(rows, pluginRow(registryName, name, items[name]))
		}
	}
	return rows
}

// pluginRows returns the osquery_registry rows of an extension's plugins.
func pluginRows(uuid osquery.ExtensionRouteUUID, routes osquery.ExtensionRegistry) []map[string]string {
	rows := []map[string]string{}
	for _, registryName := range slices.Sorted(maps.Keys(routes)) {
		for _, name := range slices.Sorted(maps.Keys(routes[registryName])) {
			rows = append(rows, pluginRow(registryName, name, uuid))
		}
	}
	return rows
}

func pluginRow(registryName, name string, owner osquery.ExtensionRouteUUID) map[string]string {
	active := activePlugins[registryName] == "" || activePlugins[registryName] == name
	return map[string]string{
		"registry":   registryName,
		"name":       name,
		"owner_uuid": strconv.FormatInt(int64(owner), 10),
		"internal":   "0",
		"active":     boolDigit(active),
	}
}

func compareOwners(a, b osquery.ExtensionRouteUUID) int {
	switch {
	case a == 0 && b != 0:
		return -1
	case a != 0 && b == 0:
		return 1
	}
	return 0
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// tableColumns converts a table's route information, the "columns" response
// of osquery-go's table plugin, into engine columns. It keeps the rows whose
// id is "column", as osqueryd's xCreate does, and treats an unparsable "op" as
// no options. The engine applies osqueryd's --extensions_default_index rule
// to columns without options.
func tableColumns(routes osquery.ExtensionPluginResponse) ([]engine.Column, error) {
	var columns []engine.Column
	for _, route := range routes {
		if route["id"] != "column" || route["name"] == "" || route["type"] == "" {
			continue
		}

		options, err := strconv.Atoi(route["op"])
		if err != nil {
			options = 0
		}
		columns = append(columns, engine.Column{Name: route["name"], Type: route["type"], Options: options})
	}
	if len(columns) == 0 {
		return nil, fmt.Errorf("route information has no columns: %v", routes)
	}
	return columns, nil
}

// versionAtLeast reports whether the dotted version sdk is at least required,
// with the rules of osqueryd's versionAtLeast (osquery/utils/info/version.cpp):
// "0.0.0" and an empty version always pass, numbers compare numerically, and a
// chunk that is not a number compares as text.
func versionAtLeast(required, sdk string) bool {
	if required == "0.0.0" || sdk == "0.0.0" || sdk == "" {
		return true
	}

	requiredChunks := strings.Split(required, ".")
	for i, chunk := range strings.Split(sdk, ".") {
		if i >= len(requiredChunks) {
			return true
		}

		have, errHave := strconv.Atoi(chunk)
		want, errWant := strconv.Atoi(requiredChunks[i])
		if errHave != nil || errWant != nil {
			if chunk < requiredChunks[i] {
				return false
			}
			continue
		}

		if have < want {
			return false
		}
		if have > want {
			return true
		}
	}
	return true
}
