package remoteservicelaunches_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// hostileText is what an attacker may put into a command line or an event
// field. It contains an escape sequence that clears the screen, a carriage
// return that overwrites the line, a NUL and a right-to-left override,
// then a line break that would start a forged log line.
const hostileText = "\x1b[2J\r\x00\u202eexe.txt\nlevel=ERROR msg=forged"

// TestLogsQuoteHostileText logs an osquery error and a time constraint
// that carry hostile text through the text handler the extension writes
// its logs with. Every record must stay on one line, and no control or
// format character may reach the log raw.
func TestLogsQuoteHostileText(t *testing.T) {
	t.Parallel()

	var logs skipLog
	// The extension's own handler: log/slog's text format, which it
	// writes to stderr.
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	querier := querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
		if strings.Contains(sql, "sysmon") {
			return nil, errors.New("query returned error: " + hostileText)
		}
		return nil, nil
	})
	tbl := remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier:   querier,
		Sources:   []sources.Source{sources.NewSysmon(), sources.NewSecurity()},
		LocalHost: "test-host",
		Logger:    logger,
	})

	qc := timeConstraint(table.OperatorGreaterThanOrEquals, hostileText)
	_, err := tbl.Generate(t.Context(), qc)
	require.NoError(t, err)

	logs.mu.Lock()
	out := logs.buf.String()
	logs.mu.Unlock()
	require.Contains(t, out, `msg="ignoring time constraints"`)
	require.Contains(t, out, `msg="reading source failed"`)
	require.Contains(t, out, `\x1b[2J\r\x00\u202eexe.txt\nlevel=ERROR msg=forged`, "the values are quoted with Go escapes")

	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		require.True(t, strings.HasPrefix(line, "time="), "line %d starts no record: %q", i, line)
		require.NotContains(t, line, "\nlevel=ERROR msg=forged")
		for _, r := range line {
			unsafe := unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
			require.False(t, unsafe, "raw %U in log line %d: %q", r, i, line)
		}
	}
}
