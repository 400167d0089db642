package telemetry

// knownTables returns the tables that osquery results-log rows may load
// into, with their columns as osquery 5.23 declares them.
// TODO: read these from internal/osqueryschema once that package is in the
// tree, so that the two lists cannot drift apart.
func knownTables() []knownTable {
	return localTables
}

var localTables = []knownTable{
	{
		name: "windows_events",
		columns: []string{"time", "datetime", "source", "provider_name", "provider_guid", "computer_name",
			"eventid", "task", "level", "keywords", "data", "eid"},
		visible: [][]string{{"time", "datetime", "source", "provider_name", "provider_guid", "computer_name",
			"eventid", "task", "level", "keywords", "data"}},
	},
	{
		name: "process_etw_events",
		columns: []string{"type", "pid", "ppid", "session_id", "flags", "exit_code", "path", "cmdline", "username",
			"token_elevation_type", "token_elevation_status", "mandatory_label", "datetime", "time_windows", "time",
			"eid", "header_pid", "process_sequence_number", "parent_process_sequence_number"},
		visible: [][]string{{"type", "pid", "ppid", "session_id", "flags", "exit_code", "path", "cmdline", "username",
			"token_elevation_type", "token_elevation_status", "mandatory_label", "datetime"}},
	},
	{
		name: "process_events",
		columns: []string{"pid", "path", "mode", "cmdline", "cmdline_size", "env", "env_count", "env_size", "cwd",
			"auid", "uid", "euid", "gid", "egid", "owner_uid", "owner_gid", "atime", "mtime", "ctime", "btime",
			"overflows", "parent", "time", "uptime", "eid", "status", "fsuid", "suid", "fsgid", "sgid", "syscall"},
		visible: [][]string{
			{"pid", "path", "mode", "cmdline", "cwd", "auid", "uid", "euid", "gid", "egid", "owner_uid", "owner_gid",
				"atime", "mtime", "ctime", "btime", "parent", "time", "uptime", "fsuid", "suid", "fsgid", "sgid", "syscall"},
			{"pid", "path", "mode", "cmdline", "cwd", "auid", "uid", "euid", "gid", "egid", "owner_uid", "owner_gid",
				"atime", "mtime", "ctime", "btime", "parent", "time", "uptime", "status"},
		},
	},
	{
		name: "socket_events",
		columns: []string{"action", "pid", "path", "fd", "auid", "family", "protocol", "local_address",
			"remote_address", "local_port", "remote_port", "socket", "time", "uptime", "eid", "success", "status"},
		visible: [][]string{
			{"action", "pid", "path", "fd", "auid", "family", "local_address", "remote_address", "local_port",
				"remote_port", "time", "uptime", "status"},
			{"action", "pid", "path", "fd", "auid", "family", "local_address", "remote_address", "local_port",
				"remote_port", "time", "uptime"},
		},
	},
	{
		name: "processes",
		columns: []string{"pid", "name", "path", "cmdline", "state", "cwd", "root", "uid", "gid", "euid", "egid",
			"suid", "sgid", "on_disk", "wired_size", "resident_size", "total_size", "user_time", "system_time",
			"disk_bytes_read", "disk_bytes_written", "start_time", "parent", "pgroup", "threads", "nice",
			"elevated_token", "secure_process", "protection_type", "virtual_process", "elapsed_time", "handle_count",
			"percent_processor_time", "upid", "uppid", "cpu_type", "cpu_subtype", "translated", "cgroup_path"},
	},
}
