// Package remoteservicelaunches is the osquery table remote_service_launches:
// one row for every child process that the Windows service control manager
// (services.exe) started within one second after accepting an inbound
// network connection, the analytic MITRE CAR-2014-03-005 "Remotely Launched
// Executables via Services".
//
// Each generate call reads every source once through osquery (Sysmon and
// Security events and ETW process starts on Windows, process_events and
// socket_events elsewhere), each with a `time` lower bound, correlates the
// events in Go and returns the detections. With a Discovery configured, the
// sources that osquery cannot serve (table missing, flags off) are not
// queried. A source that fails is logged and skipped. The call fails when no
// source of process starts or no source of inbound connections can be read,
// because the detection would otherwise be blind without a sign of it. The
// remote_service_launch_sources table shows why.
package remoteservicelaunches

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sq "github.com/Masterminds/squirrel"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// Defaults of Config.
const (
	// DefaultLookback equals osquery's default --events_expiry: older
	// events are gone from the event tables anyway.
	DefaultLookback = 3600 * time.Second
	// DefaultReceiveSlack is how long after an event osquery may store it.
	// Sysmon writes network events seconds late.
	DefaultReceiveSlack = 60 * time.Second
	// DefaultSourceTimeout bounds each source query. It stays well below
	// the time osqueryd waits for an extension's generate call
	// (--thrift_timeout, 300 s by default) even when every source runs
	// into it.
	DefaultSourceTimeout = 20 * time.Second
	// DefaultMaxRowsPerSource caps the rows read from one source in one
	// call, which bounds memory. At osquery's default --events_max a busy
	// host can buffer more events than this.
	// NOTE: the value is an estimate, not a measured limit. The Sysmon and
	// Security rows of the recordings average 0.8 to 1.3 KB of text, so the
	// cap holds roughly 100 MB per source.
	DefaultMaxRowsPerSource = 100_000
)

// skipLogInterval limits how often skipped rows of one source are logged.
const skipLogInterval = time.Minute

// Config configures the table. Only Querier is required.
type Config struct {
	// Querier runs the sub-queries: osquery through its extension socket,
	// or the embedded engine over recorded telemetry.
	Querier osq.Querier
	// Options tunes the rule. Zero fields take detect.DefaultOptions'
	// values. The hosts' own addresses learned from the events are added
	// to HostAddresses.
	Options detect.Options
	// Lookback is how far back a query without a `time` constraint reads.
	Lookback time.Duration
	// ReceiveSlack widens the sub-queries' bounds on osquery's `time`,
	// which is when osquery stored an event, not when it happened.
	ReceiveSlack time.Duration
	// SourceTimeout bounds each source's query.
	SourceTimeout time.Duration
	// MaxRowsPerSource caps the rows read from each source; negative means
	// no cap.
	MaxRowsPerSource int
	// Logger receives one line per failed source, per reached row cap and,
	// at most once a minute per source, the skipped rows. Nil discards.
	Logger *slog.Logger
	// Sources are the event sources to read; nil means
	// sources.Default(LocalHost).
	Sources []sources.Source
	// LocalHost names this computer in the events of sources whose tables
	// have no host column (process_events, socket_events,
	// process_etw_events); "" means os.Hostname. ETW events take the
	// spelling of the Windows events when it differs (see
	// sources.Events.AssignLocalHost).
	LocalHost string
	// Discovery, when set, reports which sources osquery can serve, and the
	// others are not queried. Nil queries every source, as the embedded
	// engine over recordings needs.
	Discovery *sourcehealth.Discovery
	// Stats receives the outcome of each source read, for the
	// remote_service_launch_sources table. Nil makes New create one.
	Stats *sourcehealth.Stats
}

// Table is the remote_service_launches table. Its methods are safe for
// concurrent use.
type Table struct {
	cfg    Config
	logger *slog.Logger

	mu          sync.Mutex
	lastSkipLog map[string]time.Time
}

// New returns the table with cfg's defaults filled in.
func New(cfg Config) *Table {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = DefaultLookback
	}
	if cfg.ReceiveSlack <= 0 {
		cfg.ReceiveSlack = DefaultReceiveSlack
	}
	if cfg.SourceTimeout <= 0 {
		cfg.SourceTimeout = DefaultSourceTimeout
	}
	if cfg.MaxRowsPerSource == 0 {
		cfg.MaxRowsPerSource = DefaultMaxRowsPerSource
	}

	defaults := detect.DefaultOptions()
	if cfg.Options.Window <= 0 {
		cfg.Options.Window = defaults.Window
	}
	if len(cfg.Options.ParentNames) == 0 {
		cfg.Options.ParentNames = defaults.ParentNames
	}

	if cfg.LocalHost == "" {
		if name, err := os.Hostname(); err == nil {
			cfg.LocalHost = name
		}
	}
	if cfg.Sources == nil {
		cfg.Sources = sources.Default(cfg.LocalHost)
	}
	if cfg.Stats == nil {
		cfg.Stats = sourcehealth.NewStats()
	}

	return &Table{
		cfg:         cfg,
		logger:      cfg.Logger.With("table_name", Name),
		lastSkipLog: map[string]time.Time{},
	}
}

// Config returns the table's configuration with the defaults New filled
// in, including the Stats that Generate writes to.
func (t *Table) Config() Config {
	return t.cfg
}

// Plugin returns the osquery-go table plugin.
func (t *Table) Plugin() *table.Plugin {
	return table.NewPlugin(Name, Columns(), t.Generate,
		table.WithDescription("Child processes that the Windows service control manager (services.exe) started "+
			"within one second after accepting an inbound network connection: MITRE CAR-2014-03-005, "+
			"Remotely Launched Executables via Services. Reads Sysmon events 1 and 3 and Security events "+
			"4688 and 5156 from windows_events and process starts from process_etw_events on Windows, and "+
			"process_events with socket_events elsewhere."),
		table.WithURL(carURL),
		table.WithExample("SELECT * FROM remote_service_launches WHERE time >= (SELECT unix_time FROM time) - 3600;"),
		table.WithExample("SELECT host, path, cmdline, remote_address, delay_ms FROM remote_service_launches WHERE time > 1600618000;"),
		table.WithNotes("Without a constraint on time the table reads the last hour of events (osquery's default "+
			"--events_expiry). The event tables must be enabled: --enable_windows_events_publisher, "+
			"--enable_windows_events_subscriber and --windows_event_channels including Security or "+
			"Microsoft-Windows-Sysmon/Operational, and optionally --enable_process_etw_events, on Windows; audit "+
			"process and socket events elsewhere. The query fails when no source of process starts or of inbound "+
			"connections can be read; SELECT * FROM remote_service_launch_sources shows each source's state and fix."),
		table.WithPlatforms(table.WindowsPlatform, table.LinuxPlatform, table.DarwinPlatform),
	)
}

// Generate returns one row per detected child process, sorted by host,
// child start time and pid.
func (t *Table) Generate(ctx context.Context, queryContext table.QueryContext) ([]map[string]string, error) {
	wanted, ignored := timeConstraints(queryContext)
	if len(ignored) > 0 {
		t.logger.DebugContext(ctx, "ignoring time constraints", "expressions", ignored)
	}
	if wanted.empty() {
		return []map[string]string{}, nil
	}

	bounds, err := t.queryBounds(ctx, wanted)
	if err != nil {
		return nil, err
	}

	events, err := t.readSources(ctx, bounds)
	if err != nil {
		return nil, err
	}

	opts := t.cfg.Options
	opts.HostAddresses = mergeAddresses(t.cfg.Options.HostAddresses, events.HostAddresses())
	detections := detect.Detect(events.Processes, events.Connections, opts)

	rows := make([]map[string]string, 0, len(detections))
	for _, d := range detections {
		if !wanted.contains(unixSeconds(d.Process.Time)) {
			continue
		}
		rows = append(rows, detectionRow(d))
	}
	return rows, nil
}

// queryBounds turns the wanted range of child start times into bounds on
// the sources' `time` column. A connection may precede its child by the
// window plus the clock tolerance, and osquery may store either event up to
// ReceiveSlack after or before its own time. Without a lower constraint the
// bound is Lookback before osquery's clock.
func (t *Table) queryBounds(ctx context.Context, wanted timeRange) (sources.Bounds, error) {
	bounds := sources.Bounds{MaxRows: max(t.cfg.MaxRowsPerSource, 0)}

	if wanted.hasLower {
		earlier := t.cfg.Options.Window + max(t.cfg.Options.ClockTolerance, 0) + t.cfg.ReceiveSlack
		bounds.Lower = wanted.lower - ceilSeconds(earlier)
	} else {
		bounds.Lower = t.now(ctx) - ceilSeconds(t.cfg.Lookback)
	}
	// osquery stores no event before 1970, and a negative value would
	// depend on how osqueryd parses the text of a constraint.
	bounds.Lower = max(bounds.Lower, 0)

	if wanted.hasUpper {
		bounds.Upper = wanted.upper + ceilSeconds(t.cfg.ReceiveSlack)
		if bounds.Upper == 0 {
			// Zero means "no upper bound" to the sources; one second more
			// keeps the bound and only adds rows SQLite filters out.
			bounds.Upper = 1
		}
	}
	return bounds, nil
}

// now returns osquery's clock, `SELECT unix_time FROM time`, so that a
// recording loaded into the engine is read at its own time. It falls back to
// the wall clock.
func (t *Table) now(ctx context.Context) int64 {
	wall := time.Now().Unix()

	query, err := timeQuery()
	if err != nil {
		t.logger.WarnContext(ctx, "using the wall clock", "reason", "building the time query failed", "error", err)
		return wall
	}

	ctx, cancel := context.WithTimeout(ctx, t.cfg.SourceTimeout)
	defer cancel()

	rows, err := t.cfg.Querier.QueryRows(ctx, query)
	if err != nil {
		t.logger.WarnContext(ctx, "using the wall clock", "reason", "reading the time table failed", "error", err)
		return wall
	}
	if len(rows) != 1 {
		t.logger.WarnContext(ctx, "using the wall clock", "reason", "the time table returned no single row", "rows", len(rows))
		return wall
	}

	now, err := strconv.ParseInt(rows[0]["unix_time"], 10, 64)
	if err != nil {
		t.logger.WarnContext(ctx, "using the wall clock", "reason", "invalid unix_time", "unix_time", rows[0]["unix_time"])
		return wall
	}
	return now
}

// timeQuery returns `SELECT unix_time FROM time`.
func timeQuery() (string, error) {
	names, err := sqlliteral.Idents("unix_time", "time")
	if err != nil {
		return "", err
	}
	return sqlliteral.Render(sq.Select(names[0]).From(names[1]))
}

// readSources runs each source's query, one statement per source, each with
// its own deadline, and decodes the rows. A source that discovery shows
// missing or disabled is not queried, and a failing source is logged and
// skipped. An error is returned when no source of process starts or no
// source of inbound connections could be read.
func (t *Table) readSources(ctx context.Context, bounds sources.Bounds) (*sources.Events, error) {
	if len(t.cfg.Sources) == 0 {
		return nil, errors.New("no event sources configured; configure at least one source")
	}

	var snapshot *sourcehealth.Snapshot
	if t.cfg.Discovery != nil {
		snapshot = t.cfg.Discovery.Snapshot(ctx)
	}

	all := sources.NewEvents()
	var failures, unavailable []error
	var covered sourcehealth.Role
	for _, source := range t.cfg.Sources {
		if snapshot != nil {
			if a := snapshot.Check(source.Name()); !a.Usable() {
				status := sourcehealth.StatusDisabled
				if a.Missing() {
					status = sourcehealth.StatusMissing
				}
				t.cfg.Stats.Record(source.Name(), sourcehealth.Read{Time: time.Now(), NotRead: status})
				t.logger.DebugContext(ctx, "skipping source", "source", source.Name(), "status", status, "hint", a.Hint)
				unavailable = append(unavailable, fmt.Errorf("%s is %s: %s", source.Name(), status, a.Hint))
				continue
			}
		}

		events, err := t.readSource(ctx, source, bounds)
		if err != nil {
			t.logger.WarnContext(ctx, "reading source failed", "source", source.Name(), "source_table", source.Table(), "error", err)
			failures = append(failures, fmt.Errorf("%s: %w", source.Name(), err))
			continue
		}
		covered |= sourcehealth.RolesOf(source.Name())
		all.Add(events)
	}

	if len(failures) == len(t.cfg.Sources) {
		return nil, fmt.Errorf("reading every event source failed, check that the event tables are enabled: %w", errors.Join(failures...))
	}
	if err := blindness(covered, failures, unavailable); err != nil {
		return nil, err
	}

	// Events of tables without a host column are this computer's. Naming
	// them after all sources are in lets them take the spelling the
	// Windows events use.
	all.AssignLocalHost(t.cfg.LocalHost)

	// Orient after all sources are in, so that one source's address
	// evidence orients another's connections.
	all.Orient()
	return all, nil
}

// blindness returns an error when the sources read cover no process starts
// or no inbound connections, naming the sources that failed or were not
// available.
func blindness(covered sourcehealth.Role, failures, unavailable []error) error {
	var lacking []string
	if covered&sourcehealth.RoleProcessStarts == 0 {
		lacking = append(lacking, "process starts")
	}
	if covered&sourcehealth.RoleConnections == 0 {
		lacking = append(lacking, "inbound connections")
	}
	if len(lacking) == 0 {
		return nil
	}

	causes := errors.Join(append(failures, unavailable...)...)
	if causes == nil {
		causes = errors.New("no configured source provides them")
	}
	return fmt.Errorf("the detection cannot run on this host, no source of %s could be read; "+
		"SELECT * FROM remote_service_launch_sources shows each source's state and fix: %w",
		strings.Join(lacking, " or "), causes)
}

// readSource reads and decodes one source and records the outcome in
// Stats.
func (t *Table) readSource(ctx context.Context, source sources.Source, bounds sources.Bounds) (*sources.Events, error) {
	// One deadline covers both reads of a capped source, so that the
	// source takes no longer than SourceTimeout.
	queryCtx, cancel := context.WithTimeout(ctx, t.cfg.SourceTimeout)
	defer cancel()

	// The first read is unordered, because ordering costs osquery a sort of
	// every matching row. It requests one row more than the cap, which
	// shows whether the cap drops any.
	unordered := bounds
	if unordered.MaxRows > 0 {
		unordered.MaxRows++
	}
	rows, err := t.querySource(queryCtx, source, unordered)
	if err != nil {
		t.cfg.Stats.Record(source.Name(), sourcehealth.Read{Time: time.Now(), Err: err.Error()})
		return nil, err
	}

	capped := bounds.MaxRows > 0 && len(rows) > bounds.MaxRows
	if capped {
		// Read again newest first, so that the cap drops the oldest rows.
		newest := bounds
		newest.NewestFirst = true
		if rows, err = t.querySource(queryCtx, source, newest); err != nil {
			t.cfg.Stats.Record(source.Name(), sourcehealth.Read{Time: time.Now(), Err: err.Error()})
			return nil, err
		}
	}
	if bounds.MaxRows > 0 && len(rows) > bounds.MaxRows {
		// A querier that ignores LIMIT must not make the table decode and
		// correlate more rows than the cap, which bounds its memory. The
		// copy lets the dropped rows go without changing the querier's
		// slice.
		rows = slices.Clone(rows[:bounds.MaxRows])
	}
	read := sourcehealth.Read{Rows: len(rows)}
	if capped {
		read.RowCap = bounds.MaxRows
		t.logger.WarnContext(ctx, "source row cap reached, older events were not read",
			"source", source.Name(), "max_rows", bounds.MaxRows)
	}

	events := source.Decode(rows)
	if enricher, ok := source.(sources.ParentEnricher); ok {
		t.fillParents(ctx, source.Name(), enricher, events)
	}

	read.Time = time.Now()
	read.Skipped = events.Skipped
	t.cfg.Stats.Record(source.Name(), read)
	t.logSkipped(ctx, source.Name(), events.Skipped, len(rows))
	return events, nil
}

// querySource runs the source's query within bounds.
func (t *Table) querySource(ctx context.Context, source sources.Source, bounds sources.Bounds) ([]map[string]string, error) {
	query, err := source.Query(bounds)
	if err != nil {
		return nil, err
	}
	rows, err := t.cfg.Querier.QueryRows(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("querying %s: %w", source.Table(), err)
	}
	return rows, nil
}

// fillParents reads the running service control manager processes for a
// source whose rows lack the parent path. A failure is logged and leaves
// the paths empty: the rule then takes the parent's name from the
// connection's image path, which Sysmon 3 and Security 5156 carry.
func (t *Table) fillParents(ctx context.Context, name string, enricher sources.ParentEnricher, events *sources.Events) {
	query, err := enricher.ParentQuery(events, t.cfg.Options.ParentNames)
	if err != nil || query == "" {
		if err != nil {
			t.logger.WarnContext(ctx, "building the parent process query failed", "source", name, "error", err)
		}
		return
	}

	ctx, cancel := context.WithTimeout(ctx, t.cfg.SourceTimeout)
	defer cancel()

	rows, err := t.cfg.Querier.QueryRows(ctx, query)
	if err != nil {
		t.logger.WarnContext(ctx, "reading the parent processes failed, parent paths stay empty", "source", name, "error", err)
		return
	}
	enricher.FillParents(events, rows)
}

// logSkipped logs the skipped rows of a source, at most once per
// skipLogInterval, so that a steady stream of malformed events does not
// flood the log.
func (t *Table) logSkipped(ctx context.Context, source string, skipped map[string]int, rows int) {
	if len(skipped) == 0 {
		return
	}

	t.mu.Lock()
	now := time.Now()
	due := now.Sub(t.lastSkipLog[source]) >= skipLogInterval
	if due {
		t.lastSkipLog[source] = now
	}
	t.mu.Unlock()

	if !due {
		return
	}

	reasons := slices.Sorted(maps.Keys(skipped))
	attrs := []any{"source", source, "rows", rows}
	for _, reason := range reasons {
		attrs = append(attrs, "skipped_"+reason, skipped[reason])
	}
	t.logger.InfoContext(ctx, "skipped malformed rows", attrs...)
}

// mergeAddresses returns the union of configured and learned host
// addresses.
func mergeAddresses(configured, learned map[string][]string) map[string][]string {
	out := make(map[string][]string, len(configured)+len(learned))
	for _, m := range []map[string][]string{configured, learned} {
		for host, addresses := range m {
			out[host] = append(out[host], addresses...)
		}
	}
	for host, addresses := range out {
		slices.Sort(addresses)
		out[host] = slices.Compact(addresses)
	}
	return out
}

// ceilSeconds returns a duration in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
