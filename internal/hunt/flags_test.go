package hunt

import (
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/output"
	"github.com/svclaunch/svclaunch/internal/telemetry"
)

func TestParseTimeBound(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want int64
	}{
		{"1600618616", 1600618616},
		{"1600618616.9", 1600618616},
		{"2020-09-20T16:16:56Z", 1600618616},
		{"2020-09-20T16:16:56.597Z", 1600618616},
		{"2020-09-20T12:16:56-04:00", 1600618616},
		{" 0 ", 0},
	}
	for _, tt := range tests {
		got, err := parseTimeBound(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}

	for _, bad := range []string{"", "yesterday", "2020-09-20 16:16:56", "2020-09-20T16:16:56", "NaN", "Inf"} {
		_, err := parseTimeBound(bad)
		require.ErrorContains(t, err, "use RFC 3339", bad)
	}
}

func TestParseUTCOffset(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want time.Duration
	}{
		{"-04:00", -4 * time.Hour},
		{"+05:45", 5*time.Hour + 45*time.Minute},
		{"-0330", -(3*time.Hour + 30*time.Minute)},
		{"+9", 9 * time.Hour},
		{"Z", 0},
		{"utc", 0},
		{"+14:00", 14 * time.Hour},
	}
	for _, tt := range tests {
		got, err := parseUTCOffset(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}

	for _, bad := range []string{"04:00", "-4h", "+15:00", "-04:60", "EDT", ""} {
		_, err := parseUTCOffset(bad)
		require.ErrorContains(t, err, "invalid UTC offset", bad)
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	t.Parallel()

	cfg, err := parseFlags(huntCommand, []string{"a.json"}, false)
	require.NoError(t, err)
	require.Equal(t, output.FormatNDJSON, cfg.format)
	require.Equal(t, time.Second, cfg.window)
	require.Zero(t, cfg.clockTolerance)
	require.Equal(t, []string{"services.exe"}, cfg.parentNames)
	require.False(t, cfg.includeLoopback)
	require.Nil(t, cfg.defaultUTCOffset)
	require.Nil(t, cfg.hostUTCOffsets)
	require.Nil(t, cfg.since)
	require.Equal(t, telemetry.FormatAuto, cfg.inputFormat)

	cfg, err = parseFlags(huntCommand, nil, true)
	require.NoError(t, err)
	require.Equal(t, output.FormatTable, cfg.format)
	require.Empty(t, cfg.files)
}

func TestParseFlagsInterleaved(t *testing.T) {
	t.Parallel()

	cfg, err := parseFlags(huntCommand, []string{
		"a.json", "--format", "csv", "-", "--parent-name=svchost.exe", "--parent-name", "services.exe",
		"--window", "1500ms", "--clock-tolerance=200ms", "--include-loopback", "--utc-offset", "-04:00",
		"--since", "2020-09-20T16:00:00Z", "--until", "1600620000", "--input-format", "nxlog", "--quiet",
		"--", "--odd-name.json",
	}, true)
	require.NoError(t, err)
	require.Equal(t, []string{"a.json", "-", "--odd-name.json"}, cfg.files)
	require.Equal(t, output.FormatCSV, cfg.format)
	require.Equal(t, []string{"svchost.exe", "services.exe"}, cfg.parentNames)
	require.Equal(t, 1500*time.Millisecond, cfg.window)
	require.Equal(t, 200*time.Millisecond, cfg.clockTolerance)
	require.True(t, cfg.includeLoopback)
	require.Equal(t, -4*time.Hour, *cfg.defaultUTCOffset)
	require.Equal(t, int64(1600617600), *cfg.since)
	require.Equal(t, int64(1600620000), *cfg.until)
	require.Equal(t, telemetry.FormatNXLog, cfg.inputFormat)
	require.True(t, cfg.quiet)
}

func TestParseFlagsQuery(t *testing.T) {
	t.Parallel()

	cfg, err := parseFlags(queryCommand, []string{"--load", "a.json", "b.json", "--load=c.json", "SELECT 1"}, false)
	require.NoError(t, err)
	require.Equal(t, []string{"a.json", "c.json", "b.json"}, cfg.files)
	require.Equal(t, "SELECT 1", cfg.sql)
}

func TestParseFlagsHelp(t *testing.T) {
	t.Parallel()

	for _, arg := range []string{"-h", "--help", "-help"} {
		_, err := parseFlags(huntCommand, []string{arg}, false)
		require.ErrorIs(t, err, flag.ErrHelp, arg)
	}
}

func TestParseFlagsUsageErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		cmd  command
		args []string
		want string
	}{
		{"unknown flag", huntCommand, []string{"--fromat", "csv"}, "flag provided but not defined: -fromat"},
		{"unknown output format", huntCommand, []string{"--format", "yaml"}, `invalid value "yaml" for flag -format: unknown output format "yaml": use one of table, json, ndjson, csv`},
		{"unknown input format", huntCommand, []string{"--input-format", "xml"}, `invalid value "xml" for flag -input-format: unknown input format "xml": use one of nxlog, python-evtx, ecs, osquery-results, evtx, or leave the flag out to detect it`},
		{"bad offset", huntCommand, []string{"--utc-offset", "EDT"}, `invalid value "EDT" for flag -utc-offset: invalid UTC offset "EDT": use ±HH:MM such as -04:00 or +05:30, or Z`},
		{"bad window", huntCommand, []string{"--window", "1"}, `invalid value "1" for flag -window: invalid window "1": use a Go duration such as 1s, 500ms or 1m30s`},
		{"zero window", huntCommand, []string{"--window", "0s"}, `invalid value "0s" for flag -window: the window must be longer than 0s`},
		{"negative tolerance", huntCommand, []string{"--clock-tolerance", "-1s"}, `invalid value "-1s" for flag -clock-tolerance: invalid clock tolerance "-1s": it must not be negative`},
		{"path as parent", huntCommand, []string{"--parent-name", `C:\Windows\services.exe`}, `invalid parent name "C:\\Windows\\services.exe": give an image base name such as services.exe`},
		{"bad since", huntCommand, []string{"--since", "yesterday"}, `invalid value "yesterday" for flag -since: invalid time "yesterday": use RFC 3339`},
		{"since after until", huntCommand, []string{"--since", "200", "--until", "100"}, "--since 200 is after --until 100: swap them"},
		{"missing flag value", huntCommand, []string{"--format"}, "flag needs an argument: -format"},
		{"stdin twice", huntCommand, []string{"-", "-"}, `standard input ("-") is given 2 times: give it once`},
		{"query without sql", queryCommand, []string{"--load", "a.json"}, "missing SQL statement: give it as the last argument"},
		{"query with a file as sql", queryCommand, []string{"flags_test.go"}, `missing SQL statement: the last argument "flags_test.go" is a file`},
		{"query with a name as sql", queryCommand, []string{"a.json", "b.json"}, `missing SQL statement: the last argument "b.json" contains no SQL keyword`},
		{"stdin for sql and events", queryCommand, []string{"--sql-file", "-", "-"}, `standard input ("-") is given 2 times`},
		{"sql file twice", queryCommand, []string{"--sql-file", "a.sql", "--sql-file", "b.sql"}, "--sql-file is already given (a.sql)"},
		{"query with empty sql", queryCommand, []string{"--load", "a.json", " "}, "the SQL statement is empty"},
		{"since on query", queryCommand, []string{"--since", "1", "SELECT 1"}, "flag provided but not defined: -since"},
		{"load on hunt", huntCommand, []string{"--load", "a.json"}, "flag provided but not defined: -load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := parseFlags(tt.cmd, tt.args, false)
			require.Error(t, err)
			var usage usageError
			require.True(t, errors.As(err, &usage), "want a usage error, got %T", err)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestHuntSQL(t *testing.T) {
	t.Parallel()

	since, until := int64(100), int64(200)
	require.Equal(t, "SELECT * FROM remote_service_launches", huntSQL(nil, nil))
	require.Equal(t, "SELECT * FROM remote_service_launches WHERE time >= 100", huntSQL(&since, nil))
	require.Equal(t, "SELECT * FROM remote_service_launches WHERE time <= 200", huntSQL(nil, &until))
	require.Equal(t, "SELECT * FROM remote_service_launches WHERE time >= 100 AND time <= 200", huntSQL(&since, &until))
}

func TestWrapText(t *testing.T) {
	t.Parallel()

	require.Equal(t, "  aaa bbb\n  ccc\n  dddddddddd", wrapText("aaa bbb ccc dddddddddd", "  ", 10))
	require.Equal(t, "  one", wrapText(" one ", "  ", 10))
}

func TestParseFlagsHostUTCOffsets(t *testing.T) {
	t.Parallel()

	cfg, err := parseFlags(huntCommand, []string{
		"--utc-offset", "WORKSTATION6=-05:00", "--utc-offset", "+01:00", "--utc-offset=MORDORDC.theshire.local=Z",
	}, false)
	require.NoError(t, err)
	require.Equal(t, time.Hour, *cfg.defaultUTCOffset)
	require.Equal(t, map[string]time.Duration{"WORKSTATION6": -5 * time.Hour, "MORDORDC.theshire.local": 0}, cfg.hostUTCOffsets)

	for _, bad := range [][]string{
		{"--utc-offset", "-04:00", "--utc-offset", "-05:00"},
		{"--utc-offset", "=-04:00"},
		{"--utc-offset", "HOST=later"},
		{"--utc-offset", "HOST=-04:00", "--utc-offset", "host=-05:00"},
	} {
		_, err := parseFlags(huntCommand, bad, false)
		var usage usageError
		require.ErrorAs(t, err, &usage, "%q", bad)
	}
}

func TestParseFlagsQueryLiteralArguments(t *testing.T) {
	t.Parallel()

	commented := "-- name: hunt\n-- description: a comment\nSELECT 1"
	cfg, err := parseFlags(queryCommand, []string{"--format", "csv", "a.json", commented}, false)
	require.NoError(t, err)
	require.Equal(t, []string{"a.json"}, cfg.files)
	require.Equal(t, commented, cfg.sql)
	require.Equal(t, output.FormatCSV, cfg.format)

	// A flag's value may contain spaces, in either form.
	cfg, err = parseFlags(queryCommand, []string{"--load", "my events.json", "--load=other events.json", "-x y.json", "--quiet", "SELECT 1"}, false)
	require.NoError(t, err)
	require.Equal(t, []string{"my events.json", "other events.json", "-x y.json"}, cfg.files)
	require.True(t, cfg.quiet)

	cfg, err = parseFlags(queryCommand, []string{"a.json", "--sql-file", "hunt.sql", "b.json"}, false)
	require.NoError(t, err)
	require.Equal(t, []string{"a.json", "b.json"}, cfg.files)
	require.Equal(t, "hunt.sql", cfg.sqlFile)
}
