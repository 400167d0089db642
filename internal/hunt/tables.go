package hunt

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/output"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunchsources"
)

// offlineSourceTimeout bounds each source query of the table. Offline, no
// osqueryd waits for the result and the user can interrupt the command, so
// the bound only guards against a query that never ends.
const offlineSourceTimeout = time.Hour

// unixEventTables are the osquery tables without a host column that the
// Unix sources read.
var unixEventTables = []string{"process_events", "socket_events"}

// attachTables attaches the extension's tables to e, with e as the osquery
// they query, and returns the visible columns of each by table name.
func attachTables(e *engine.Engine, cmd command, cfg config, s *summary, stderr io.Writer) (map[string][]string, error) {
	// Recorded Windows events are read through the Windows sources on every
	// platform svclaunch runs on, and recorded Linux or macOS events through
	// the Unix ones.
	unixHost, unixHosts := s.hostOf(unixEventTables)
	if len(unixHosts) > 1 {
		// NOTE: the events of all these hosts are correlated as one host's.
		fmt.Fprintf(stderr, "svclaunch %s: warning: process_events and socket_events contain rows of %d hosts (%s), which these tables cannot tell apart; load one host's results log per run to avoid matches across hosts\n",
			cmd.name, len(unixHosts), output.EscapeText(strings.Join(unixHosts, ", ")))
	}
	eventSources := recordedSources(s, unixHost, unixHosts)

	// A recording is read whole: the lookback reaches its oldest row, and no
	// row cap applies because the rows are already in memory.
	lookback := remoteservicelaunches.DefaultLookback
	if s.hasOldest && s.clock >= s.oldest {
		lookback = time.Duration(s.clock-s.oldest+1) * time.Second
	}

	detection := remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier: e,
		Options: detect.Options{
			Window:          cfg.window,
			ParentNames:     cfg.parentNames,
			IncludeLoopback: cfg.includeLoopback,
			ClockTolerance:  cfg.clockTolerance,
		},
		Lookback:         lookback,
		SourceTimeout:    offlineSourceTimeout,
		MaxRowsPerSource: -1,
		Logger:           newLogger(stderr, cfg.quiet),
		Sources:          eventSources,
		LocalHost:        unixHost,
	})

	// remote_service_launch_sources counts each source's events in the
	// recording and shows what the detection's last query read.
	sourcesConfig := remoteservicelaunchsources.ConfigFor(detection.Config())
	sourcesConfig.Recorded = true
	launchSources := remoteservicelaunchsources.New(sourcesConfig)

	visible := map[string][]string{}
	for _, plugin := range []*table.Plugin{detection.Plugin(), launchSources.Plugin()} {
		columns, err := attachPlugin(e, plugin)
		if err != nil {
			return nil, fmt.Errorf("attaching table %s: %w", plugin.Name(), err)
		}
		visible[plugin.Name()] = columns
	}
	return visible, nil
}

// windowsEventTables are the osquery tables that the Windows sources read.
var windowsEventTables = []string{"windows_events", "process_etw_events"}

// recordedSources returns the sources of the platforms whose events the
// recording holds: the Windows sources when it has windows_events or
// process_etw_events rows, the Unix ones when it has process_events or
// socket_events rows, and both when it has neither. A Windows-only
// recording thus lists no Unix source in remote_service_launch_sources,
// where the status missing would wrongly claim that osquery lacks the
// table and empty would suggest a fix on hosts the recording never had.
func recordedSources(s *summary, unixHost string, unixHosts []string) []sources.Source {
	_, windowsHosts := s.hostOf(windowsEventTables)
	hasWindows, hasUnix := len(windowsHosts) > 0, len(unixHosts) > 0

	var out []sources.Source
	if hasWindows || !hasUnix {
		out = append(out, sources.Windows()...)
	}
	if hasUnix || !hasWindows {
		out = append(out, sources.Unix(unixHost)...)
	}
	return out
}

// newLogger returns the logger of the extension's tables. It writes warnings,
// such as a source that failed, and errors as text lines on standard error
// without a timestamp; --quiet keeps only errors. slog's text handler quotes
// values that contain control characters.
func newLogger(stderr io.Writer, quiet bool) *slog.Logger {
	level := slog.LevelWarn
	if quiet {
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}
