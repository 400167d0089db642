package sources

import (
	"slices"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// ETWTable is osquery's table of process starts and stops read from Event
// Tracing for Windows (osquery 5.8 and later, --enable_process_etw_events).
const ETWTable = "process_etw_events"

// ETW event types of process_etw_events.type.
const (
	ETWProcessStart = "ProcessStart"
	ETWProcessStop  = "ProcessStop"
)

// etwColumns are the process_etw_events columns the source reads. time,
// time_windows, header_pid and the sequence numbers are hidden columns,
// which `SELECT *` leaves out, so every column is named.
var etwColumns = []string{
	"type", "pid", "ppid", "path", "cmdline", "username", "time", "time_windows",
	"header_pid", "process_sequence_number", "parent_process_sequence_number",
}

// filetimeUnixEpoch is 1970-01-01 as a Windows FILETIME: 100 ns ticks since
// 1601-01-01 UTC.
const filetimeUnixEpoch = 116_444_736_000_000_000

// ETW reads process starts from osquery's process_etw_events table. The
// table has no host column and no parent image path: the host is the local
// computer, and the parent path comes from the processes table (see
// ParentQuery).
type ETW struct {
	host string
}

// NewETW returns the process_etw_events source. host names the computer in
// the decoded events; "" leaves the name to the caller, which sets it with
// Events.AssignLocalHost.
func NewETW(host string) *ETW {
	return &ETW{host: host}
}

// Name returns detect.SourceETW.
func (*ETW) Name() string { return detect.SourceETW }

// Table returns "process_etw_events".
func (*ETW) Table() string { return ETWTable }

// Query returns the SELECT of ProcessStart rows within bounds. In this
// table `time` is the event's own time, truncated to seconds, not the time
// osquery stored the row.
func (s *ETW) Query(bounds Bounds) (string, error) {
	query, err := selectRows(s.Table(), etwColumns, bounds)
	if err != nil {
		return "", err
	}
	eventType, err := sqlliteral.Ident("type")
	if err != nil {
		return "", err
	}
	return render(s.Name(), query.Where(sq.Eq{eventType: ETWProcessStart}))
}

// Decode converts ProcessStart rows. The time is time_windows, a FILETIME
// in 100 ns ticks, or the whole-second `time` when time_windows is missing.
// The sequence numbers become instance keys with the detect.InstanceKindETW
// prefix. header_pid is kept for a parent pid spoofing check.
//
// NOTE: osquery up to at least 5.23 writes the parent's sequence number
// into process_sequence_number as well (etw_process_events.cpp assigns
// ParentProcessSequenceNumber to both columns). A process never has its
// parent's sequence number, so when the two are equal the child's own key is
// left empty.
func (s *ETW) Decode(rows []map[string]string) *Events {
	events := NewEvents()
	for _, row := range rows {
		if reason := s.decodeRow(events, row); reason != "" {
			events.skip(reason)
		}
	}
	return events
}

func (s *ETW) decodeRow(events *Events, row map[string]string) string {
	if strings.TrimSpace(row["type"]) != ETWProcessStart {
		return SkipUnexpectedEvent
	}
	if strings.TrimSpace(row["pid"]) == "" {
		return SkipMissingField
	}
	pid, err := parsePID(row["pid"])
	if err != nil || pid == detect.UnknownPID {
		return SkipBadPID
	}
	parentPID, err := parsePID(row["ppid"])
	if err != nil {
		return SkipBadPID
	}
	headerPID, err := parsePID(row["header_pid"])
	if err != nil {
		return SkipBadPID
	}
	if headerPID == detect.UnknownPID {
		headerPID = 0
	}

	timestamp, reason := etwTime(row["time_windows"], row["time"])
	if reason != "" {
		return reason
	}

	sequence := sequenceNumber(row["process_sequence_number"])
	parentSequence := sequenceNumber(row["parent_process_sequence_number"])
	instance, parentInstance := "", ""
	if parentSequence != "" {
		parentInstance = detect.InstanceKindETW + parentSequence
	}
	if sequence != "" && sequence != parentSequence {
		instance = detect.InstanceKindETW + sequence
	}

	events.Processes = append(events.Processes, detect.ProcessStart{
		Host:           s.host,
		PID:            pid,
		Instance:       instance,
		ParentPID:      parentPID,
		ParentInstance: parentInstance,
		Path:           row["path"],
		Cmdline:        row["cmdline"],
		Username:       row["username"],
		Time:           timestamp,
		HeaderPID:      headerPID,
		Sources:        []string{detect.SourceETW},
	})
	return ""
}

// etwTime returns the event time from time_windows (FILETIME) at 100 ns, or
// from the whole-second time column when time_windows is missing or zero,
// and the skip reason when neither can be used.
func etwTime(filetime, seconds string) (detect.Timestamp, string) {
	filetime = strings.TrimSpace(filetime)
	if filetime == "" || filetime == "0" {
		return unixTime(seconds)
	}

	ticks, err := strconv.ParseInt(filetime, 10, 64)
	if err != nil {
		return detect.Timestamp{}, SkipUnparsableTime
	}
	// Checking the range first keeps the conversion to nanoseconds from
	// overflowing.
	earliest := detect.EarliestEventTime.UnixNano()/100 + filetimeUnixEpoch
	latest := detect.LatestEventTime.UnixNano()/100 + filetimeUnixEpoch
	if ticks < earliest || ticks >= latest {
		return detect.Timestamp{}, SkipAbsurdTime
	}
	return detect.Timestamp{UnixNano: (ticks - filetimeUnixEpoch) * 100, Resolution: detect.ResolutionFiletime}, ""
}

// sequenceNumber returns a process sequence number in canonical decimal,
// or "" when it is missing, zero or invalid. Only ETW's user-mode process
// start event from version 3 on carries it, so older Windows builds leave
// it zero.
func sequenceNumber(s string) string {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

// ParentEnricher is implemented by sources whose rows lack the parent's
// image path. The caller runs ParentQuery through osquery and passes the
// returned rows to FillParents; the two calls keep the source free of I/O.
type ParentEnricher interface {
	// ParentQuery returns the query for the running processes whose image
	// name is one of parentNames, or "" when events hold no process start
	// that needs a parent path.
	ParentQuery(events *Events, parentNames []string) (string, error)
	// FillParents sets the parent path of the process starts in events
	// from the rows of ParentQuery.
	FillParents(events *Events, rows []map[string]string)
}

// ParentQuery returns `SELECT pid, name, path, start_time FROM processes
// WHERE lower(name) IN (...)` for the lower-cased parentNames, or "" when
// no decoded start lacks its parent path. processes is not an evented
// table, so the query has no bound on time.
func (s *ETW) ParentQuery(events *Events, parentNames []string) (string, error) {
	needed := slices.ContainsFunc(events.Processes, func(p detect.ProcessStart) bool {
		return p.ParentPath == "" && p.ParentPID != detect.UnknownPID
	})
	if !needed || len(parentNames) == 0 {
		return "", nil
	}

	names := make([]string, 0, len(parentNames))
	for _, name := range parentNames {
		names = append(names, strings.ToLower(name))
	}
	slices.Sort(names)
	names = slices.Compact(names)

	columns, err := sqlliteral.Idents("pid", "name", "path", "start_time")
	if err != nil {
		return "", err
	}
	table, err := sqlliteral.Ident("processes")
	if err != nil {
		return "", err
	}
	query := sq.Select(columns...).From(table).Where(sq.Eq{"lower(" + columns[1] + ")": names})
	return render(s.Name()+" parent", query)
}

// FillParents sets ParentPath on the starts whose parent pid is the pid of
// a returned process and whose time is at or after that process's
// start_time. A start before it had another process of the same pid as its
// parent, in an earlier boot or before the pid was reused, so it is left
// alone. A row without a valid start_time (osquery writes -1 when it cannot
// read it) fills nothing, because a start from an earlier boot could not be
// distinguished.
func (s *ETW) FillParents(events *Events, rows []map[string]string) {
	type parent struct {
		path  string
		start int64 // Unix nanoseconds
	}
	parents := map[int64]parent{}
	for _, row := range rows {
		pid, err := parsePID(row["pid"])
		if err != nil || pid == detect.UnknownPID {
			continue
		}
		startSeconds, err := strconv.ParseInt(strings.TrimSpace(row["start_time"]), 10, 64)
		if err != nil || startSeconds <= 0 || startSeconds >= detect.LatestEventTime.Unix() {
			continue
		}
		path := row["path"]
		if path == "" {
			path = row["name"]
		}
		parents[pid] = parent{path: path, start: time.Unix(startSeconds, 0).UnixNano()}
	}
	if len(parents) == 0 {
		return
	}

	for i := range events.Processes {
		p := &events.Processes[i]
		found, ok := parents[p.ParentPID]
		if !ok || p.ParentPath != "" || p.Time.UnixNano < found.start {
			continue
		}
		p.ParentPath = found.path
	}
}
