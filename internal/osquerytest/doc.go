// Package osquerytest runs a stand-in for osqueryd's extension manager so that
// tests can exercise svclaunch over the real extension protocol without an
// osquery binary.
//
// The stand-in serves osquery's Thrift ExtensionManager service (the code
// generated in osquery-go's gen/osquery package) with the binary protocol on a
// Unix domain socket, or a named pipe on Windows. SQL sent to it runs on an
// embedded engine that holds osquery's table schemas. Tables that extensions
// register are attached to that engine, and each scan calls the extension back
// over Thrift, the way osqueryd does.
//
// The behaviour follows osqueryd 5.23 (osquery/extensions/interface.cpp,
// impl_thrift.cpp and extensions.cpp, osquery/registry/registry_factory.cpp,
// osquery/process/posix/process.cpp):
//
//   - registration assigns a random 16-bit UUID and rejects a duplicate
//     extension name, an SDK older than 1.7.7, an unknown registry and any
//     plugin whose name is already taken, for example a core table name;
//   - the engine treats extension table columns without options as INDEX
//     columns unless it was opened with DisableExtensionsDefaultIndex, as
//     osqueryd's --extensions_default_index does, so equality constraints
//     on them reach the extension;
//   - a watcher pings every extension each interval and removes one whose
//     check fails;
//   - Query returns status 1 with SQLite's error message when SQL fails;
//   - osquery_extensions and osquery_registry list the registered extensions
//     and their plugins.
//
// LaunchExtension starts an extension binary with the argv and environment
// that osqueryd's watcher gives autoloaded extensions.
package osquerytest
