// Package remoteservicelaunchsources is the osquery table
// remote_service_launch_sources: one row per event source that
// remote_service_launches reads, with whether osquery has the source's
// table, whether its events are turned on and arriving, what the
// detection's last read of it met, a status and a one-line fix. A fleet
// administrator queries it to find the hosts where the detection is blind
// and why.
package remoteservicelaunchsources

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// Config configures the table. Only Querier and Sources are required.
type Config struct {
	// Querier runs the discovery and count queries.
	Querier osq.Querier
	// Sources names the sources to report, in row order (detect.Source*).
	Sources []string
	// Discovery reports osquery's tables, subscribers and flags. Sharing
	// remote_service_launches' Discovery shares its cache; nil creates
	// one.
	Discovery *sourcehealth.Discovery
	// Stats holds remote_service_launches' last reads. Nil reports every
	// source as not read.
	Stats *sourcehealth.Stats
	// Lookback is the span in which events are counted;
	// remoteservicelaunches.DefaultLookback when zero.
	Lookback time.Duration
	// ParentNames are the image names of the service control manager,
	// for the count of Sysmon connections they accepted.
	ParentNames []string
	// QueryTimeout bounds each count query;
	// remoteservicelaunches.DefaultSourceTimeout when zero.
	QueryTimeout time.Duration
	// Logger receives a line for each count query that fails. Nil
	// discards.
	Logger *slog.Logger
	// Recorded marks a table that reads recorded telemetry loaded for a
	// replay (svclaunch hunt and query) instead of a live osqueryd. An
	// empty source's hint then names the kinds of events the recording
	// lacks instead of a host fix, and hints give no lookback span.
	Recorded bool
}

// ConfigFor returns the configuration that reports on the sources of a
// remote_service_launches table with configuration launches (as
// Table.Config returns it), sharing its querier, discovery, statistics,
// lookback and parent names.
func ConfigFor(launches remoteservicelaunches.Config) Config {
	names := make([]string, 0, len(launches.Sources))
	for _, source := range launches.Sources {
		names = append(names, source.Name())
	}
	return Config{
		Querier:      launches.Querier,
		Sources:      names,
		Discovery:    launches.Discovery,
		Stats:        launches.Stats,
		Lookback:     launches.Lookback,
		ParentNames:  launches.Options.ParentNames,
		QueryTimeout: launches.SourceTimeout,
		Logger:       launches.Logger,
	}
}

// Table is the remote_service_launch_sources table. Its methods are safe
// for concurrent use.
type Table struct {
	cfg    Config
	logger *slog.Logger
}

// New returns the table with cfg's defaults filled in.
func New(cfg Config) *Table {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := cfg.Logger.With("table_name", Name)
	if cfg.Lookback <= 0 {
		cfg.Lookback = remoteservicelaunches.DefaultLookback
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = remoteservicelaunches.DefaultSourceTimeout
	}
	if cfg.Discovery == nil {
		cfg.Discovery = sourcehealth.NewDiscovery(cfg.Querier, sourcehealth.DiscoveryOptions{Logger: logger, Timeout: cfg.QueryTimeout})
	}
	if cfg.Stats == nil {
		cfg.Stats = sourcehealth.NewStats()
	}
	return &Table{cfg: cfg, logger: logger}
}

// Plugin returns the osquery-go table plugin.
func (t *Table) Plugin() *table.Plugin {
	return table.NewPlugin(Name, Columns(), t.Generate,
		table.WithDescription("One row per event source of remote_service_launches: whether osquery has its table, "+
			"whether its events are enabled and arriving, what the last detection query read, a status (ok, missing, "+
			"disabled, empty, error) and a one-line hint naming the osquery flag, audit policy or Sysmon setting to change."),
		table.WithExample("SELECT source, status, hint FROM remote_service_launch_sources WHERE status != 'ok';"),
		table.WithExample("SELECT source, events, newest_event_time, rows_read, rows_skipped, skip_reason FROM remote_service_launch_sources;"),
		table.WithNotes("The detection sees a remote service launch only when at least one source of process starts "+
			"(sysmon, security, etw, process_events) and one of inbound connections (sysmon, security, socket_events) "+
			"are ok. Events are counted over the last hour unless the extension's lookback says otherwise; the rows_* "+
			"columns describe the last query of remote_service_launches. A source that is empty only because another ok "+
			"source covers what it lacks is reported ok, with the optional fix as its hint."),
		table.WithPlatforms(table.WindowsPlatform, table.LinuxPlatform, table.DarwinPlatform),
	)
}

// Generate returns one row per configured source. It fails only when ctx
// is done: an osquery table that cannot be read shows as the status of its
// source.
func (t *Table) Generate(ctx context.Context, _ table.QueryContext) ([]map[string]string, error) {
	lower := max(t.now(ctx)-int64(t.cfg.Lookback/time.Second), 0)
	snapshot := t.cfg.Discovery.Snapshot(ctx)

	reports := make([]sourcehealth.Report, 0, len(t.cfg.Sources))
	for _, source := range t.cfg.Sources {
		evidence := sourcehealth.Evidence{Availability: snapshot.Check(source), Lookback: t.cfg.Lookback, Recorded: t.cfg.Recorded}
		evidence.Last, evidence.HasLast = t.cfg.Stats.Last(source)
		if evidence.Availability.Usable() {
			evidence.Counts, evidence.CountErr = t.count(ctx, source, lower)
		}
		reports = append(reports, sourcehealth.Evaluate(evidence))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sourcehealth.Reconcile(reports)

	rows := make([]map[string]string, 0, len(reports))
	for _, r := range reports {
		rows = append(rows, reportRow(r))
	}
	return rows, nil
}

// count runs a source's count query.
func (t *Table) count(ctx context.Context, source string, lower int64) (*sourcehealth.Counts, error) {
	query, err := sourcehealth.CountQuery(source, lower, t.cfg.ParentNames)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, t.cfg.QueryTimeout)
	defer cancel()

	rows, err := t.cfg.Querier.QueryRows(ctx, query)
	if err != nil {
		t.logger.WarnContext(ctx, "counting source events failed", "source", source, "error", err)
		return nil, fmt.Errorf("counting %s events: %w", source, err)
	}
	counts, err := sourcehealth.ParseCounts(source, rows)
	if err != nil {
		t.logger.WarnContext(ctx, "counting source events failed", "source", source, "error", err)
		return nil, err
	}
	return &counts, nil
}

// now returns osquery's clock, `SELECT unix_time FROM time`, so that a
// recording loaded into the engine is read at its own time. It falls back to
// the wall clock.
func (t *Table) now(ctx context.Context) int64 {
	wall := time.Now().Unix()

	names, err := sqlliteral.Idents("unix_time", "time")
	if err != nil {
		return wall
	}
	query, err := sqlliteral.Render(sq.Select(names[0]).From(names[1]))
	if err != nil {
		return wall
	}

	ctx, cancel := context.WithTimeout(ctx, t.cfg.QueryTimeout)
	defer cancel()
	rows, err := t.cfg.Querier.QueryRows(ctx, query)
	if err != nil || len(rows) != 1 {
		t.logger.WarnContext(ctx, "using the wall clock", "reason", "reading the time table failed", "error", err)
		return wall
	}
	now, err := strconv.ParseInt(rows[0]["unix_time"], 10, 64)
	if err != nil {
		t.logger.WarnContext(ctx, "using the wall clock", "reason", "invalid unix_time", "unix_time", rows[0]["unix_time"])
		return wall
	}
	return now
}

// reportRow converts a report into an output row.
func reportRow(r sourcehealth.Report) map[string]string {
	a := r.Availability
	row := map[string]string{
		"source":            a.Source,
		"table":             a.Table,
		"event_ids":         a.EventIDs,
		"provides":          provides(a.Roles),
		"table_exists":      a.TableExists.Column(),
		"subscriber_active": a.SubscriberActive.Column(),
		"publisher_active":  a.PublisherActive.Column(),
		"events":            strconv.FormatInt(r.Events, 10),
		"newest_event_time": strconv.FormatInt(r.NewestEventTime, 10),
		"last_read_time":    "0",
		"rows_read":         "-1",
		"rows_skipped":      "0",
		"skip_reason":       "",
		"row_cap_reached":   "0",
		"last_error":        r.LastError,
		"status":            r.Status,
		"hint":              r.Hint,
	}

	if r.HasLast {
		row["last_read_time"] = strconv.FormatInt(r.Last.Time.Unix(), 10)
		if r.Last.NotRead == "" && r.Last.Err == "" {
			row["rows_read"] = strconv.Itoa(r.Last.Rows)
			row["rows_skipped"] = strconv.Itoa(r.Last.SkippedTotal())
			row["skip_reason"] = r.Last.MainSkipReason()
		}
		if r.Last.RowCap > 0 {
			row["row_cap_reached"] = "1"
		}
	}
	return row
}

// provides names a source's roles.
func provides(roles sourcehealth.Role) string {
	var names []string
	if roles&sourcehealth.RoleProcessStarts != 0 {
		names = append(names, "process_starts")
	}
	if roles&sourcehealth.RoleConnections != 0 {
		names = append(names, "connections")
	}
	return strings.Join(names, ",")
}
