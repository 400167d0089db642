package osqueryschema

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"modernc.org/sqlite"
)

func TestMain(m *testing.M) {
	// osquery registers its version collations on every connection. A
	// byte-wise stand-in is enough to check that the declarations parse.
	for _, name := range []string{"VERSION", "VERSION_ARCH", "VERSION_DPKG", "VERSION_RHEL"} {
		sqlite.MustRegisterCollationUtf8(name, strings.Compare)
	}
	m.Run()
}

func TestDeclarationsCreate(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	for _, table := range All() {
		_, err := db.Exec(table.CreateTableSQL())
		require.NoError(t, err, table.CreateTableSQL())

		rows, err := db.Query("SELECT name FROM pragma_table_info(?)", table.Name)
		require.NoError(t, err)
		var names []string
		for rows.Next() {
			var name string
			require.NoError(t, rows.Scan(&name))
			names = append(names, name)
		}
		require.NoError(t, rows.Err())
		require.Len(t, names, len(table.Columns)+len(AliasColumns(table.Columns)), table.Name)
	}
}

func TestAllTables(t *testing.T) {
	t.Parallel()
	var names []string
	for _, table := range All() {
		names = append(names, table.Name)
		require.NotEmpty(t, table.Description, table.Name)
		for _, c := range table.Columns {
			require.NotEmpty(t, c.Description, "%s.%s", table.Name, c.Name)
			require.Contains(t, []string{"TEXT", "INTEGER", "BIGINT", "DOUBLE", "DATETIME"}, c.Type, "%s.%s", table.Name, c.Name)
		}
	}
	require.Equal(t, []string{
		"interface_addresses", "osquery_events", "osquery_extensions", "osquery_flags", "osquery_info", "osquery_registry",
		"process_etw_events", "process_events", "processes", "socket_events", "time", "windows_events",
	}, names)
}

func TestColumnFacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		table   string
		column  string
		typ     string
		sqlType string
		options int
	}{
		{"windows_events", "time", "BIGINT", "BIGINT", OptionAdditional},
		{"windows_events", "eventid", "INTEGER", "INTEGER", 0},
		{"windows_events", "provider_guid", "TEXT", "TEXT", OptionCollateNoCase},
		{"windows_events", "eid", "TEXT", "TEXT", OptionHidden},
		{"process_etw_events", "time", "BIGINT", "BIGINT", OptionHidden | OptionAdditional},
		{"process_etw_events", "time_windows", "BIGINT", "BIGINT", OptionHidden},
		{"process_etw_events", "datetime", "DATETIME", "TEXT", 0},
		{"process_etw_events", "eid", "INTEGER", "INTEGER", OptionHidden},
		{"process_events", "time", "BIGINT", "BIGINT", OptionAdditional},
		{"process_events", "syscall", "TEXT", "TEXT", 0},
		{"socket_events", "protocol", "INTEGER", "INTEGER", OptionHidden},
		{"socket_events", "status", "TEXT", "TEXT", 0},
		{"processes", "pid", "BIGINT", "BIGINT", OptionIndex | OptionOptimized},
		{"time", "unix_time", "INTEGER", "INTEGER", 0},
		{"osquery_info", "version", "TEXT", "TEXT", OptionCollateVersion},
		{"interface_addresses", "address", "TEXT", "TEXT", 0},
		{"interface_addresses", "friendly_name", "TEXT", "TEXT", 0},
	}
	for _, tt := range tests {
		t.Run(tt.table+"."+tt.column, func(t *testing.T) {
			table, ok := Lookup(tt.table)
			require.True(t, ok)
			c, ok := table.Column(tt.column)
			require.True(t, ok)
			require.Equal(t, tt.typ, c.Type)
			require.Equal(t, tt.sqlType, c.SQLType())
			require.Equal(t, tt.options, c.Options)
		})
	}
}

func TestForPlatformHidesOtherColumns(t *testing.T) {
	t.Parallel()
	events, ok := Lookup("process_events")
	require.True(t, ok)

	linux := events.ForPlatform(PlatformLinux)
	darwin := events.ForPlatform(PlatformDarwin)
	for _, name := range []string{"syscall", "fsuid"} {
		c, _ := linux.Column(name)
		require.False(t, c.Hidden(), "linux %s", name)
		c, _ = darwin.Column(name)
		require.True(t, c.Hidden(), "darwin %s", name)
	}
	c, _ := darwin.Column("status")
	require.False(t, c.Hidden(), "darwin status")

	original, _ := events.Column("syscall")
	require.False(t, original.Hidden(), "ForPlatform must not change the stored schema")
}

func TestInterfaceAddressesColumns(t *testing.T) {
	t.Parallel()
	table, ok := Lookup("interface_addresses")
	require.True(t, ok)

	var names []string
	for _, c := range table.Columns {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"interface", "address", "mask", "broadcast", "point_to_point", "type", "friendly_name"}, names)

	friendlyName, _ := table.ForPlatform(PlatformWindows).Column("friendly_name")
	require.False(t, friendlyName.Hidden(), "windows friendly_name")
	friendlyName, _ = table.ForPlatform(PlatformLinux).Column("friendly_name")
	require.True(t, friendlyName.Hidden(), "linux friendly_name")
}

func TestCreateTableSQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		table string
		want  string
	}{
		{"windows_events", "CREATE TABLE windows_events(`time` BIGINT, `datetime` TEXT, `source` TEXT, " +
			"`provider_name` TEXT, `provider_guid` TEXT COLLATE NOCASE, `computer_name` TEXT, `eventid` INTEGER, " +
			"`task` INTEGER, `level` INTEGER, `keywords` TEXT, `data` TEXT, `eid` TEXT HIDDEN, " +
			"PRIMARY KEY (`time`, `datetime`, `source`, `provider_name`, `provider_guid`, `computer_name`, `eventid`, " +
			"`task`, `level`, `keywords`, `data`, `eid`)) WITHOUT ROWID"},
		{"osquery_flags", "CREATE TABLE osquery_flags(`name` TEXT, `type` TEXT, `description` TEXT, " +
			"`default_value` TEXT, `value` TEXT, `shell_only` INTEGER)"},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			table, ok := Lookup(tt.table)
			require.True(t, ok)
			require.Equal(t, tt.want, table.CreateTableSQL())
		})
	}
}

func TestColumnDefinition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		columns   []Column
		extension bool
		want      string
	}{
		{
			name:      "extension keeps rowid",
			columns:   []Column{{Name: "time", Type: "BIGINT", Options: OptionAdditional}, {Name: "host", Type: "TEXT"}},
			extension: true,
			want:      "(`time` BIGINT, `host` TEXT, PRIMARY KEY (`time`, `host`))",
		},
		{
			name:    "index column is the key",
			columns: []Column{{Name: "pid", Type: "BIGINT", Options: OptionIndex | OptionOptimized}, {Name: "path", Type: "TEXT", Options: OptionAdditional}, {Name: "x", Type: "TEXT"}},
			want:    "(`pid` BIGINT, `path` TEXT, `x` TEXT, PRIMARY KEY (`pid`, `path`)) WITHOUT ROWID",
		},
		{
			name:    "aliases appended hidden",
			columns: []Column{{Name: "b", Type: "TEXT", Aliases: []string{"bb"}}, {Name: "a", Type: "DATETIME", Aliases: []string{"z", "y"}}},
			want:    "(`b` TEXT, `a` TEXT, `y` TEXT HIDDEN, `z` TEXT HIDDEN, `bb` TEXT HIDDEN)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ColumnDefinition(tt.columns, tt.extension))
		})
	}
}
