package sources

import (
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// ProcessEvents reads process starts from osquery's process_events table
// (Linux audit, macOS OpenBSM).
type ProcessEvents struct {
	host string
}

// NewProcessEvents returns the process_events source. The table has no host
// column, so host names the computer in every decoded event.
func NewProcessEvents(host string) *ProcessEvents {
	return &ProcessEvents{host: host}
}

// Name returns detect.SourceProcessEvents.
func (*ProcessEvents) Name() string { return detect.SourceProcessEvents }

// Table returns "process_events".
func (*ProcessEvents) Table() string { return "process_events" }

// Query returns the SELECT of process_events within bounds.
func (s *ProcessEvents) Query(bounds Bounds) (string, error) {
	query, err := selectRows(s.Table(), []string{"pid", "parent", "path", "cmdline", "time"}, bounds)
	if err != nil {
		return "", err
	}
	return render(s.Name(), query)
}

// Decode converts process_events rows. The time is osquery's `time`, when
// it stored the row, in whole seconds: the table has no finer event time.
// The username stays empty, because the table carries only numeric uids.
func (s *ProcessEvents) Decode(rows []map[string]string) *Events {
	events := NewEvents()
	for _, row := range rows {
		if row["pid"] == "" {
			events.skip(SkipMissingField)
			continue
		}
		pid, err := parsePID(row["pid"])
		if err != nil || pid == detect.UnknownPID {
			events.skip(SkipBadPID)
			continue
		}
		parentPID, err := parsePID(row["parent"])
		if err != nil {
			events.skip(SkipBadPID)
			continue
		}
		timestamp, reason := unixTime(row["time"])
		if reason != "" {
			events.skip(reason)
			continue
		}

		events.Processes = append(events.Processes, detect.ProcessStart{
			Host:      s.host,
			PID:       pid,
			ParentPID: parentPID,
			Path:      row["path"],
			Cmdline:   row["cmdline"],
			Time:      timestamp,
			Sources:   []string{detect.SourceProcessEvents},
		})
	}
	return events
}

// SocketEvents reads accepted connections from osquery's socket_events
// table (Linux audit, macOS OpenBSM).
type SocketEvents struct {
	host string
}

// NewSocketEvents returns the socket_events source. The table has no host
// column, so host names the computer in every decoded event.
func NewSocketEvents(host string) *SocketEvents {
	return &SocketEvents{host: host}
}

// Name returns detect.SourceSocketEvents.
func (*SocketEvents) Name() string { return detect.SourceSocketEvents }

// Table returns "socket_events".
func (*SocketEvents) Table() string { return "socket_events" }

// Query returns the SELECT of accept rows of socket_events within bounds.
// protocol is a hidden column, so it is named explicitly.
func (s *SocketEvents) Query(bounds Bounds) (string, error) {
	columns := []string{"action", "pid", "path", "family", "protocol", "local_address", "local_port", "remote_address", "remote_port", "time"}
	query, err := selectRows(s.Table(), columns, bounds)
	if err != nil {
		return "", err
	}
	action, err := sqlliteral.Ident("action")
	if err != nil {
		return "", err
	}
	return render(s.Name(), query.Where(sq.Eq{action: "accept"}))
}

// Decode converts socket_events accept rows into inbound connections; path
// is the accepting executable. Rows of other actions are skipped as
// unexpected. The time is osquery's whole-second `time`.
func (s *SocketEvents) Decode(rows []map[string]string) *Events {
	events := NewEvents()
	for _, row := range rows {
		inbound, known := isInbound(row["action"])
		if !known || !inbound {
			events.skip(SkipUnexpectedEvent)
			continue
		}

		if row["pid"] == "" || row["remote_address"] == "" || row["remote_port"] == "" {
			events.skip(SkipMissingField)
			continue
		}
		pid, err := parsePID(row["pid"])
		if err != nil || pid == detect.UnknownPID {
			events.skip(SkipBadPID)
			continue
		}
		remotePort, err := parsePort(row["remote_port"])
		if err != nil {
			events.skip(SkipBadPort)
			continue
		}
		// An accept row may lack the local side, which the rule does not
		// need, so a missing local port is kept as 0.
		localPort := 0
		if row["local_port"] != "" {
			localPort, err = parsePort(row["local_port"])
			if err != nil {
				events.skip(SkipBadPort)
				continue
			}
		}
		timestamp, reason := unixTime(row["time"])
		if reason != "" {
			events.skip(reason)
			continue
		}

		events.addHostAddress(s.host, row["local_address"])
		events.Connections = append(events.Connections, detect.Connection{
			Host:          s.host,
			PID:           pid,
			Path:          row["path"],
			Inbound:       true,
			Protocol:      socketProtocol(row["protocol"]),
			LocalAddress:  canonicalAddress(row["local_address"]),
			LocalPort:     localPort,
			RemoteAddress: canonicalAddress(row["remote_address"]),
			RemotePort:    remotePort,
			Time:          timestamp,
			Sources:       []string{detect.SourceSocketEvents},
		})
	}
	return events
}

// socketProtocol names the protocol number of a socket_events row. An
// accepted socket is connection-oriented, so a missing or zero protocol
// (the socket was created with protocol 0, the family's default) is TCP.
func socketProtocol(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return "tcp"
	}
	return protocolName(s)
}

// unixTime parses osquery's integer `time` column as a whole-second
// timestamp, returning the skip reason when it cannot be used.
func unixTime(s string) (detect.Timestamp, string) {
	seconds, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return detect.Timestamp{}, SkipUnparsableTime
	}
	t := time.Unix(seconds, 0)
	if !detect.PlausibleEventTime(t) {
		return detect.Timestamp{}, SkipAbsurdTime
	}
	return detect.Timestamp{UnixNano: t.UnixNano(), Resolution: detect.ResolutionSecond}, ""
}
