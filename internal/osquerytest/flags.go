package osquerytest

import (
	"context"
	"os"
	"strconv"
	"time"
)

// flag is an osqueryd command-line flag as Flag::flags() reports it: every
// value is a string, booleans are "true" or "false", and the types are the
// C++ type names of osquery's FLAG macros.
type flag struct {
	name, kind, description, value, defaultValue string
}

// flags returns the osqueryd flags that extensions read, with the values this
// stand-in uses. Options and osquery_flags return them. The descriptions are
// osqueryd's.
func (s *Server) flags() []flag {
	return []flag{
		{"config_plugin", "string", "Config plugin name", "filesystem", "filesystem"},
		{"disable_extensions", "bool", "Disable extension API", "false", "false"},
		{"distributed_plugin", "string", "Distributed plugin name", "tls", "tls"},
		{"extensions_interval", "string", "Seconds delay between connectivity checks", wholeSeconds(s.opts.Interval), wholeSeconds(DefaultInterval)},
		{"extensions_require", "string", "Comma-separated list of required extensions", "", ""},
		{"extensions_socket", "string", "Path to the extensions UNIX domain socket", s.path, defaultSocketPath},
		{"extensions_timeout", "string", "Seconds to wait for autoloaded extensions", wholeSeconds(s.opts.Timeout), wholeSeconds(DefaultTimeout)},
		{"logger_plugin", "string", "Logger plugin name", "filesystem", "filesystem"},
		{"thrift_timeout", "uint32", "Timeout for thrift socket operations", wholeSeconds(s.opts.CallTimeout), wholeSeconds(DefaultCallTimeout)},
		{"verbose", "bool", "Enable verbose informational messages", "false", "false"},
	}
}

// writeStartupTables fills osquery_flags and osquery_info, which do not
// change while the stand-in runs.
func (s *Server) writeStartupTables(ctx context.Context, started time.Time) error {
	var flagRows []map[string]string
	for _, f := range s.flags() {
		flagRows = append(flagRows, map[string]string{
			"name":          f.name,
			"type":          f.kind,
			"description":   f.description,
			"default_value": f.defaultValue,
			"value":         f.value,
			"shell_only":    "0",
		})
	}

	// The stand-in runs in this process, so its pid is osqueryd's. A
	// watcher of -1 means osqueryd runs without a watcher process.
	infoRows := []map[string]string{{
		"pid":        strconv.Itoa(os.Getpid()),
		"version":    s.opts.Version,
		"extensions": "active",
		"start_time": strconv.FormatInt(started.Unix(), 10),
		"watcher":    "-1",
	}}

	if err := s.replaceRows(ctx, "osquery_flags", flagRows); err != nil {
		return err
	}
	return s.replaceRows(ctx, "osquery_info", infoRows)
}
