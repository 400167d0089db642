package sourcehealth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// DefaultDiscoveryTTL is how long Discovery reuses what it read. osquery's
// flags change only with a restart and its registry only when an extension
// comes or goes, so a minute keeps the three extra queries off most
// generate calls while a newly enabled source is still picked up soon.
const DefaultDiscoveryTTL = 60 * time.Second

// DefaultDiscoveryTimeout bounds each discovery query.
const DefaultDiscoveryTimeout = 10 * time.Second

// probeTable is a core table that every osquery build registers. When
// osquery_registry does not list it, the registry rows are not osqueryd's
// (an empty engine) and table presence is unknown.
const probeTable = "time"

// Tristate is a fact that osquery may not have reported.
type Tristate int8

// Values of Tristate.
const (
	Unknown Tristate = iota
	Yes
	No
)

// Column returns the value written in an INTEGER column: 1, 0, or -1 when
// unknown.
func (t Tristate) Column() string {
	switch t {
	case Yes:
		return "1"
	case No:
		return "0"
	default:
		return "-1"
	}
}

func tristate(b bool) Tristate {
	if b {
		return Yes
	}
	return No
}

// DiscoveryOptions configures NewDiscovery. Zero fields take defaults.
type DiscoveryOptions struct {
	// TTL is how long a snapshot is reused, DefaultDiscoveryTTL when zero.
	TTL time.Duration
	// Timeout bounds each query, DefaultDiscoveryTimeout when zero.
	Timeout time.Duration
	// Logger receives a line for each discovery query that fails. Nil
	// discards.
	Logger *slog.Logger
	// Now returns the current time for the cache, time.Now when nil.
	Now func() time.Time
}

// Discovery reads osquery's registry, events and flags tables and caches
// the result for a short time. Its methods are safe for concurrent use.
type Discovery struct {
	querier osq.Querier
	opts    DiscoveryOptions

	mu       sync.Mutex
	snapshot *Snapshot
	taken    time.Time
}

// NewDiscovery returns a Discovery that queries q.
func NewDiscovery(q osq.Querier, opts DiscoveryOptions) *Discovery {
	if opts.TTL <= 0 {
		opts.TTL = DefaultDiscoveryTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultDiscoveryTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Discovery{querier: q, opts: opts}
}

// Snapshot returns what osquery reported, reading it again when the cached
// copy is older than the TTL. A query that fails leaves its part unknown,
// and the snapshot lists the failure in Errors.
func (d *Discovery) Snapshot(ctx context.Context) *Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()

	now := d.opts.Now()
	if d.snapshot != nil && now.Sub(d.taken) < d.opts.TTL && !now.Before(d.taken) {
		return d.snapshot
	}

	// Holding the lock while reading keeps concurrent generate calls from
	// sending the same three queries at once, so they wait for one result.
	d.snapshot = d.read(ctx)
	d.taken = now
	return d.snapshot
}

// Invalidate makes the next Snapshot read osquery again.
func (d *Discovery) Invalidate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.snapshot = nil
}

// eventsRow is one osquery_events row.
type eventsRow struct {
	publisher string
	active    string
}

// Snapshot is osquery's report on its tables, event subscribers and flags
// at one time.
type Snapshot struct {
	// tables holds the tables osquery_registry lists, nil when unknown.
	tables map[string]bool
	// subscribers and publishers hold osquery_events rows by name.
	subscribers map[string]eventsRow
	publishers  map[string]eventsRow
	// flags holds osquery_flags values by name. A missing name is unknown.
	flags map[string]string
	// Errors lists the discovery queries that failed.
	Errors []string
}

func (d *Discovery) read(ctx context.Context) *Snapshot {
	s := &Snapshot{
		subscribers: map[string]eventsRow{},
		publishers:  map[string]eventsRow{},
		flags:       map[string]string{},
	}

	if rows, ok := d.query(ctx, s, "osquery_registry", registryQuery); ok {
		tables := map[string]bool{}
		for _, row := range rows {
			tables[row["name"]] = true
		}
		if tables[probeTable] {
			s.tables = tables
		}
	}

	if rows, ok := d.query(ctx, s, "osquery_events", eventsQuery); ok {
		for _, row := range rows {
			entry := eventsRow{publisher: row["publisher"], active: row["active"]}
			switch row["type"] {
			case "subscriber":
				s.subscribers[row["name"]] = entry
			case "publisher":
				s.publishers[row["name"]] = entry
			}
		}
	}

	if rows, ok := d.query(ctx, s, "osquery_flags", flagsQuery); ok {
		for _, row := range rows {
			s.flags[row["name"]] = row["value"]
		}
	}
	return s
}

// query runs one discovery query and records a failure in s.
func (d *Discovery) query(ctx context.Context, s *Snapshot, table string, build func() (string, error)) ([]map[string]string, bool) {
	sql, err := build()
	if err == nil {
		queryCtx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
		defer cancel()
		var rows []map[string]string
		rows, err = d.querier.QueryRows(queryCtx, sql)
		if err == nil {
			return rows, true
		}
	}

	d.opts.Logger.WarnContext(ctx, "reading osquery state failed, treating it as unknown", "osquery_table", table, "error", err)
	s.Errors = append(s.Errors, fmt.Sprintf("reading %s: %v", table, err))
	return nil, false
}

// registryQuery returns the SELECT of the table plugins that the known
// sources read, plus the probe table.
func registryQuery() (string, error) {
	names := []string{probeTable}
	for _, r := range requirements {
		names = append(names, r.Table)
	}
	slices.Sort(names)
	names = slices.Compact(names)

	columns, err := sqlliteral.Idents("name", "registry", "osquery_registry")
	if err != nil {
		return "", err
	}
	query := sq.Select(columns[0]).From(columns[2]).
		Where(sq.Eq{columns[1]: "table"}).
		Where(sq.Eq{columns[0]: names})
	return sqlliteral.Render(query)
}

// eventsQuery returns the SELECT of every osquery_events row. The table
// has a few dozen.
func eventsQuery() (string, error) {
	columns, err := sqlliteral.Idents("name", "publisher", "type", "active", "osquery_events")
	if err != nil {
		return "", err
	}
	return sqlliteral.Render(sq.Select(columns[:4]...).From(columns[4]))
}

// flagsQuery returns the SELECT of the flags that turn sources on or off.
func flagsQuery() (string, error) {
	columns, err := sqlliteral.Idents("name", "value", "osquery_flags")
	if err != nil {
		return "", err
	}
	query := sq.Select(columns[0], columns[1]).From(columns[2]).Where(sq.Eq{columns[0]: discoveryFlags})
	return sqlliteral.Render(query)
}

// Availability is whether osquery can serve one source, and if not, why.
type Availability struct {
	Requirement
	// TableExists is whether osquery_registry lists the table.
	TableExists Tristate
	// SubscriberActive and PublisherActive come from osquery_events.
	SubscriberActive Tristate
	PublisherActive  Tristate
	// Disabled is true when a flag or osquery_events shows the source
	// turned off.
	Disabled bool
	// Hint names the flag to set or the upgrade to make when the table is
	// missing or the source disabled, and is empty otherwise.
	Hint string
}

// Missing reports whether osquery lacks the source's table.
func (a Availability) Missing() bool {
	return a.TableExists == No
}

// Usable reports whether the source should be queried: its table is not
// known to be missing and nothing shows it disabled. Facts osquery did not
// report count in the source's favour, so that an osquery stand-in or the
// embedded engine, which lack some of these tables' rows, still reads every
// source.
func (a Availability) Usable() bool {
	return !a.Missing() && !a.Disabled
}

// Check returns the availability of a source by name. A source svclaunch
// does not know is reported usable with unknown facts.
func (s *Snapshot) Check(source string) Availability {
	r, ok := RequirementOf(source)
	if !ok {
		return Availability{Requirement: Requirement{Source: source}}
	}
	a := Availability{Requirement: r}

	if s.tables != nil {
		a.TableExists = tristate(s.tables[r.Table])
	}
	subscriber, hasSubscriber := s.subscribers[r.Subscriber]
	if hasSubscriber {
		a.SubscriberActive = activeState(subscriber.active)
		if publisher, ok := s.publishers[subscriber.publisher]; ok {
			a.PublisherActive = activeState(publisher.active)
		}
	}

	if a.Missing() {
		a.Hint = r.MissingHint
		return a
	}
	if hint := s.disabledHint(a, subscriber.publisher); hint != "" {
		a.Disabled = true
		a.Hint = hint
	}
	return a
}

// disabledHint returns how to enable a source that the flags or
// osquery_events show off, or "" when nothing shows it off. Wrong flags come
// first because they explain an inactive subscriber.
func (s *Snapshot) disabledHint(a Availability, publisher string) string {
	if s.flagIs(flagDisableEvents, true) {
		return "osquery runs with --disable_events=true: start osqueryd with --disable_events=false " +
			"(osqueryi sets it to true unless given --disable_events=false)"
	}

	var fixes []string
	for _, name := range a.EnableFlags {
		if s.flagIs(name, false) {
			fixes = append(fixes, "--"+name+"=true")
		}
	}
	for _, name := range a.DisableFlags {
		if s.flagIs(name, true) {
			fixes = append(fixes, "--"+name+"=false")
		}
	}
	if len(fixes) > 0 {
		return "set " + strings.Join(fixes, " ") + " in osquery's flags and restart osqueryd"
	}

	if a.Channel != "" {
		if value, ok := s.flags[flagWindowsEventChannels]; ok && !listsChannel(value, a.Channel) {
			return fmt.Sprintf("add %s to --windows_event_channels (now %q) and restart osqueryd", a.Channel, value)
		}
	}

	if a.SubscriberActive == No {
		return fmt.Sprintf("osquery's %s event subscriber is not running: check osqueryd's log and that the "+
			"osquery configuration's events.disable_subscribers does not list it", a.Subscriber)
	}
	if a.PublisherActive == No {
		return fmt.Sprintf("osquery's %s event publisher is not running: check osqueryd's log", publisher)
	}
	return ""
}

// flagIs reports whether a boolean flag is reported with the given value.
// A missing flag or a value that is not a boolean matches neither.
func (s *Snapshot) flagIs(name string, want bool) bool {
	value, ok := s.flags[name]
	if !ok {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "true", "1":
		return want
	case "false", "0":
		return !want
	}
	return false
}

// listsChannel reports whether a --windows_event_channels value names
// channel. osquery splits the value at commas, trims spaces, removes quotes
// and compares channels in lower case (windows_events.cpp).
func listsChannel(value, channel string) bool {
	for entry := range strings.SplitSeq(value, ",") {
		entry = strings.NewReplacer(`"`, "", `'`, "").Replace(entry)
		if strings.EqualFold(strings.TrimSpace(entry), channel) {
			return true
		}
	}
	return false
}

// activeState reads osquery_events.active: 1 running, 0 not running, and
// -1 (osquery found no plugin of that name) unknown.
func activeState(active string) Tristate {
	switch strings.TrimSpace(active) {
	case "1":
		return Yes
	case "0":
		return No
	}
	return Unknown
}
