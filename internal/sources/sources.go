// Package sources reads process starts and inbound connections from osquery
// tables. Each Source builds one SELECT for its table, rendered to a single
// SQL string for osquery's extension API, and decodes the returned rows into
// the detector's event types, counting the rows it skips by reason.
//
// Every query carries a lower bound `time >= X`. osquery's events_optimize
// serves a query without a constraint on `time` only the rows newer than the
// running scheduled query's last run and moves that query's marker, which an
// extension's sub-query must not do.
package sources

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// Bounds limits a source query on osquery's `time` column, in Unix seconds.
// In evented tables `time` is when osquery stored the row, not when the
// event happened, so callers widen the bounds by the expected receive delay.
type Bounds struct {
	// Lower is the inclusive lower bound, always sent.
	Lower int64
	// Upper is the inclusive upper bound; 0 sends none. osquery does not
	// narrow its scan by an upper bound, but SQLite still filters by it.
	Upper int64
	// MaxRows caps the rows returned; 0 sends no LIMIT. NewestFirst decides
	// which rows a cap keeps.
	MaxRows int
	// NewestFirst orders the rows by `time`, newest first, so that a cap
	// drops old rows rather than the new ones a scheduled query has not
	// seen yet. osquery's event tables return rows unordered, so SQLite
	// then sorts every matching row. For 50,000 windows_events rows that
	// tripled the query's time in the embedded engine
	// (BenchmarkRemoteServiceLaunches in bench/, 2-vCPU AMD EPYC VM), so
	// callers request the order only when an unordered read exceeded the
	// cap.
	NewestFirst bool
}

// Source reads one kind of event from one osquery table.
type Source interface {
	// Name is the source name reported in detections (detect.Source*).
	Name() string
	// Table is the osquery table the query reads.
	Table() string
	// Query returns the single SQL statement that reads the source's rows
	// within bounds.
	Query(bounds Bounds) (string, error)
	// Decode converts rows returned by the query. Rows that cannot be
	// used are skipped and counted in Events.Skipped.
	Decode(rows []map[string]string) *Events
}

// Reasons for skipping a row, the keys of Events.Skipped.
const (
	SkipMissingField     = "missing_field"
	SkipBadPID           = "bad_pid"
	SkipBadPort          = "bad_port"
	SkipUnparsableTime   = "unparsable_time"
	SkipAbsurdTime       = "absurd_time"
	SkipInvalidJSON      = "invalid_json"
	SkipUnknownDirection = "unknown_direction"
	SkipUnexpectedEvent  = "unexpected_event"
)

// Default returns the sources of the platform svclaunch runs on: Sysmon and
// Security event logs and ETW process starts on Windows, process_events and
// socket_events elsewhere. host names the local computer in the Unix
// events, whose tables have no host column.
func Default(host string) []Source {
	if runtime.GOOS == "windows" {
		return Windows()
	}
	return Unix(host)
}

// Windows returns the Sysmon and Security event log sources and the
// process_etw_events source. The ETW events carry no host name, so the
// caller names them with Events.AssignLocalHost.
func Windows() []Source {
	return []Source{NewSysmon(), NewSecurity(), NewETW("")}
}

// Unix returns the process_events and socket_events sources for host.
func Unix(host string) []Source {
	return []Source{NewProcessEvents(host), NewSocketEvents(host)}
}

// selectRows returns the squirrel SELECT of columns from table within bounds.
// The table and column names pass the sqlliteral allow-list.
func selectRows(table string, columns []string, bounds Bounds) (sq.SelectBuilder, error) {
	checkedTable, err := sqlliteral.Ident(table)
	if err != nil {
		return sq.SelectBuilder{}, err
	}
	checkedColumns, err := sqlliteral.Idents(columns...)
	if err != nil {
		return sq.SelectBuilder{}, err
	}
	timeColumn, err := sqlliteral.Ident("time")
	if err != nil {
		return sq.SelectBuilder{}, err
	}

	query := sq.Select(checkedColumns...).From(checkedTable).Where(sq.GtOrEq{timeColumn: bounds.Lower})
	if bounds.Upper != 0 {
		query = query.Where(sq.LtOrEq{timeColumn: bounds.Upper})
	}
	if bounds.NewestFirst {
		query = query.OrderBy(timeColumn + " DESC")
	}
	if bounds.MaxRows > 0 {
		query = query.Limit(uint64(bounds.MaxRows))
	}
	return query, nil
}

// render renders a built query and names the source in its error.
func render(name string, query sq.Sqlizer) (string, error) {
	sql, err := sqlliteral.Render(query)
	if err != nil {
		return "", fmt.Errorf("building the %s query: %w", name, err)
	}
	return sql, nil
}

// parsePID parses a decimal process id, or a hexadecimal one with a 0x
// prefix as Security 4688 writes it. A missing value is UnknownPID; an
// invalid one is an error.
func parsePID(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return detect.UnknownPID, nil
	}

	var pid int64
	var err error
	if hex, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		// strconv accepts a sign after the prefix, but no writer puts one
		// there, and "0x-1" must not read as the unknown pid -1.
		if strings.HasPrefix(hex, "-") || strings.HasPrefix(hex, "+") {
			return 0, fmt.Errorf("invalid process id %q", s)
		}
		pid, err = strconv.ParseInt(hex, 16, 64)
	} else {
		pid, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil || pid < 0 {
		// osquery writes -1 for an unknown parent in process_events.
		if pid == -1 && err == nil {
			return detect.UnknownPID, nil
		}
		return 0, fmt.Errorf("invalid process id %q", s)
	}
	return pid, nil
}

// parsePort parses a port number in 0..65535.
func parsePort(s string) (int, error) {
	port, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return port, nil
}

// protocolName returns the lower-case name of an IP protocol given by name
// ("TCP") or by number ("6"). An unknown number is returned as written.
func protocolName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "6":
		return "tcp"
	case "17":
		return "udp"
	case "1":
		return "icmp"
	case "58":
		return "icmpv6"
	}
	return s
}

// Events is the decoded output of one or more sources: process starts,
// inbound connections, skip counts and the evidence of each host's own
// addresses.
type Events struct {
	Processes []detect.ProcessStart
	// Connections holds the inbound connections only. Outbound ones serve
	// as evidence of the hosts' own addresses (see HostAddresses).
	Connections []detect.Connection
	// Skipped counts the rows that could not be used, by reason.
	Skipped map[string]int
	// Orientation counts, by rule, how Orient decided the local side of the
	// connections whose source does not name it.
	Orientation map[string]int

	// addresses holds each host's own addresses, keyed by the lower-cased
	// host name, as normalized address strings.
	addresses map[string]map[string]bool
	// hostNames maps a lower-cased host name to its spellings.
	hostNames map[string]map[string]bool
	// pending lists the connections whose local side Orient decides.
	pending []pendingConnection
}

// NewEvents returns an empty Events to Add decoded events to.
func NewEvents() *Events {
	return &Events{
		Skipped:     map[string]int{},
		Orientation: map[string]int{},
		addresses:   map[string]map[string]bool{},
		hostNames:   map[string]map[string]bool{},
	}
}

func (e *Events) skip(reason string) {
	e.Skipped[reason]++
}

// SkippedTotal returns the number of skipped rows over all reasons.
func (e *Events) SkippedTotal() int {
	total := 0
	for _, n := range e.Skipped {
		total += n
	}
	return total
}

// Add appends other's events, skip counts and address evidence to e. Call
// Orient afterwards so that evidence from one source orients another's
// connections.
func (e *Events) Add(other *Events) {
	offset := len(e.Connections)
	e.Processes = append(e.Processes, other.Processes...)
	e.Connections = append(e.Connections, other.Connections...)
	for _, p := range other.pending {
		p.index += offset
		e.pending = append(e.pending, p)
	}

	for reason, n := range other.Skipped {
		e.Skipped[reason] += n
	}
	for rule, n := range other.Orientation {
		e.Orientation[rule] += n
	}
	for host, set := range other.addresses {
		for addr := range set {
			e.addHostAddressKey(host, addr)
		}
	}
	for host, names := range other.hostNames {
		for name := range names {
			e.addHostName(host, name)
		}
	}
}

// HostAddresses returns each host's own addresses as the events show them,
// keyed by every spelling of the host name seen, for
// detect.Options.HostAddresses.
func (e *Events) HostAddresses() map[string][]string {
	out := map[string][]string{}
	for key, names := range e.hostNames {
		addresses := slices.Sorted(maps.Keys(e.addresses[key]))
		if len(addresses) == 0 {
			continue
		}
		for name := range names {
			out[name] = addresses
		}
	}
	return out
}

func (e *Events) addHostName(key, name string) {
	names := e.hostNames[key]
	if names == nil {
		names = map[string]bool{}
		e.hostNames[key] = names
	}
	names[name] = true
}

// addHostAddress records addr as one of host's own addresses. Unspecified
// and unparsable addresses carry no evidence and are ignored.
func (e *Events) addHostAddress(host, addr string) {
	normalized, ok := normalizeAddress(addr)
	if !ok {
		return
	}
	key := strings.ToLower(host)
	e.addHostName(key, host)
	e.addHostAddressKey(key, normalized)
}

func (e *Events) addHostAddressKey(key, normalized string) {
	set := e.addresses[key]
	if set == nil {
		set = map[string]bool{}
		e.addresses[key] = set
	}
	set[normalized] = true
}
