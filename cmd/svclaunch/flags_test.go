package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// environment returns a lookup function over a fixed set of variables.
func environment(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		value, ok := vars[name]
		return value, ok
	}
}

func TestParseExtensionFlagsOsqueryArgv(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		args    []string
		verbose bool
	}{
		{"osqueryd default", []string{"--socket", "/var/osquery/osquery.em", "--timeout", "3", "--interval", "3"}, false},
		{"osqueryd verbose first", []string{"--verbose", "--socket", "/var/osquery/osquery.em", "--timeout", "3", "--interval", "3"}, true},
		{"verbose last", []string{"--socket", "/var/osquery/osquery.em", "--timeout", "3", "--interval", "3", "--verbose"}, true},
		{"single dash and equals", []string{"-socket=/var/osquery/osquery.em", "-timeout=3", "-interval=3"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			flags, err := parseExtensionFlags(tt.args, environment(nil))

			require.NoError(t, err)
			assert.Equal(t, "/var/osquery/osquery.em", flags.socket)
			assert.Equal(t, 3*time.Second, flags.timeout)
			assert.Equal(t, 3*time.Second, flags.interval)
			assert.Equal(t, tt.verbose, flags.verbose)
		})
	}
}

func TestParseExtensionFlagsDefaults(t *testing.T) {
	t.Parallel()

	flags, err := parseExtensionFlags([]string{"--socket", "/s.em"}, environment(nil))

	require.NoError(t, err)
	assert.Equal(t, extension.DefaultTimeout, flags.timeout)
	assert.Equal(t, extension.DefaultInterval, flags.interval)
	assert.Equal(t, extension.DefaultGenerateTimeout, flags.generateTimeout)
	assert.Equal(t, time.Second, flags.window)
	assert.Equal(t, []string{"services.exe"}, flags.parentNames)
	assert.False(t, flags.includeLoopback)
	assert.Equal(t, time.Duration(0), flags.clockTolerance)
	assert.Equal(t, remoteservicelaunches.DefaultLookback, flags.lookback)
	assert.Equal(t, "auto", flags.sources)
	assert.Nil(t, flags.tableConfig(nil, nil).Sources, "auto lets the table pick this platform's sources")
}

func TestParseExtensionFlagsFromEnvironment(t *testing.T) {
	t.Parallel()
	env := environment(map[string]string{
		"SVCLAUNCH_VERBOSE":          "true",
		"SVCLAUNCH_GENERATE_TIMEOUT": "45s",
		"SVCLAUNCH_WINDOW":           "2s",
		"SVCLAUNCH_PARENT_NAME":      "services.exe, svchost.exe",
		"SVCLAUNCH_INCLUDE_LOOPBACK": "1",
		"SVCLAUNCH_CLOCK_TOLERANCE":  "250ms",
		"SVCLAUNCH_LOOKBACK":         "30m",
		"SVCLAUNCH_SOURCES":          "all",
	})

	flags, err := parseExtensionFlags([]string{"--socket", "/s.em"}, env)

	require.NoError(t, err)
	assert.True(t, flags.verbose)
	assert.Equal(t, 45*time.Second, flags.generateTimeout)
	assert.Equal(t, 2*time.Second, flags.window)
	assert.Equal(t, []string{"services.exe", "svchost.exe"}, flags.parentNames)
	assert.True(t, flags.includeLoopback)
	assert.Equal(t, 250*time.Millisecond, flags.clockTolerance)
	assert.Equal(t, 30*time.Minute, flags.lookback)

	config := flags.tableConfig(nil, nil)
	assert.Equal(t, 2*time.Second, config.Options.Window)
	assert.Equal(t, []string{"services.exe", "svchost.exe"}, config.Options.ParentNames)
	assert.True(t, config.Options.IncludeLoopback)
	assert.Equal(t, 250*time.Millisecond, config.Options.ClockTolerance)
	assert.Equal(t, 30*time.Minute, config.Lookback)
	var got, want []string
	for _, source := range config.Sources {
		got = append(got, source.Name())
	}
	for _, source := range append(sources.Windows(), sources.Unix("")...) {
		want = append(want, source.Name())
	}
	assert.ElementsMatch(t, want, got, "all selects the Windows and the Unix sources")
}

func TestParseExtensionFlagsOverrideEnvironment(t *testing.T) {
	t.Parallel()
	env := environment(map[string]string{
		"SVCLAUNCH_WINDOW":      "2s",
		"SVCLAUNCH_PARENT_NAME": "a.exe,b.exe",
	})

	flags, err := parseExtensionFlags([]string{"--socket", "/s.em", "--window", "500ms", "--parent-name", "c.exe", "--parent-name", "d.exe"}, env)

	require.NoError(t, err)
	assert.Equal(t, 500*time.Millisecond, flags.window)
	// The command line replaces the environment's list instead of adding to it.
	assert.Equal(t, []string{"c.exe", "d.exe"}, flags.parentNames)
}

func TestParseExtensionFlagsRejectsInvalidEnvironment(t *testing.T) {
	t.Parallel()

	tests := []struct {
		variable, value, message string
	}{
		{"SVCLAUNCH_WINDOW", "soon", `invalid environment variable SVCLAUNCH_WINDOW="soon": invalid window "soon"`},
		{"SVCLAUNCH_WINDOW", "0s", "give at least 1ns"},
		{"SVCLAUNCH_CLOCK_TOLERANCE", "-1s", "give at least 0s"},
		{"SVCLAUNCH_LOOKBACK", "5ms", "give at least 1s"},
		{"SVCLAUNCH_GENERATE_TIMEOUT", "10ms", "give at least 1s"},
		{"SVCLAUNCH_INCLUDE_LOOPBACK", "maybe", "SVCLAUNCH_INCLUDE_LOOPBACK"},
		{"SVCLAUNCH_PARENT_NAME", `C:\Windows\services.exe`, "give an image base name"},
		{"SVCLAUNCH_PARENT_NAME", "services.exe,,", "invalid parent name"},
		{"SVCLAUNCH_SOURCES", "linux", `invalid source set "linux"`},
	}
	for _, tt := range tests {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			t.Parallel()

			_, err := parseExtensionFlags([]string{"--socket", "/s.em"}, environment(map[string]string{tt.variable: tt.value}))

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.message)
		})
	}
}

func TestParseExtensionFlagsRejectsArgument(t *testing.T) {
	t.Parallel()

	_, err := parseExtensionFlags([]string{"--socket", "/s.em", "extra"}, environment(nil))

	require.Error(t, err)
	assert.Contains(t, err.Error(), `unexpected argument "extra"`)
}

func TestSecondsFlagValues(t *testing.T) {
	t.Parallel()

	tests := []struct {
		value string
		want  time.Duration
		err   string
	}{
		{value: "3", want: 3 * time.Second},
		{value: "1.5", want: 1500 * time.Millisecond},
		{value: "1500ms", want: 1500 * time.Millisecond},
		{value: "0", err: "give a value above 0"},
		{value: "-2", err: "give a value above 0"},
		{value: "three", err: `invalid number of seconds "three"`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			var s seconds

			err := s.Set(tt.value)

			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, time.Duration(s))
		})
	}
}
