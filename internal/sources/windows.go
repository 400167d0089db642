package sources

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// windowsEventsColumns are the windows_events columns the Windows sources
// read. `time` is osquery's receive time and only bounds the query; the
// event's own time is in `datetime` (and Sysmon's UtcTime inside `data`).
var windowsEventsColumns = []string{"time", "datetime", "source", "computer_name", "eventid", "data"}

// windowsQuery returns the query for the events of one channel, compared
// without case because both `Security` and `security` occur, with the given
// event ids.
func windowsQuery(name, channel string, eventIDs []int, bounds Bounds) (string, error) {
	query, err := selectRows("windows_events", windowsEventsColumns, bounds)
	if err != nil {
		return "", fmt.Errorf("building the %s query: %w", name, err)
	}

	columns, err := sqlliteral.Idents("source", "eventid")
	if err != nil {
		return "", fmt.Errorf("building the %s query: %w", name, err)
	}
	query = query.
		Where(sq.Eq{"lower(" + columns[0] + ")": strings.ToLower(channel)}).
		Where(sq.Eq{columns[1]: eventIDs})

	return render(name, query)
}

// windowsEvent is one windows_events row with its data decoded.
type windowsEvent struct {
	host     string
	channel  string
	eventID  int
	datetime string
	data     eventData
}

// parseWindowsRow decodes the columns every Windows source needs, for a row
// of channel with one of eventIDs. It returns the skip reason when the row
// cannot be used. The event's data reuses buf's array.
func parseWindowsRow(row map[string]string, channel string, eventIDs []int, buf eventData) (windowsEvent, string) {
	event := windowsEvent{
		host:     strings.TrimSpace(row["computer_name"]),
		channel:  row["source"],
		datetime: strings.TrimSpace(row["datetime"]),
	}

	// The query selects only these events; the check keeps rows passed in
	// from elsewhere (an offline batch) from being counted as broken.
	id, err := strconv.Atoi(strings.TrimSpace(row["eventid"]))
	if err != nil || !strings.EqualFold(strings.TrimSpace(event.channel), channel) || !slices.Contains(eventIDs, id) {
		return event, SkipUnexpectedEvent
	}
	event.eventID = id

	if event.host == "" || row["data"] == "" {
		return event, SkipMissingField
	}

	data, err := parseEventData(row["data"], buf)
	if errors.Is(err, errNoEventData) {
		return event, SkipMissingField
	}
	if err != nil {
		return event, SkipInvalidJSON
	}
	event.data = data
	return event, ""
}

// errAbsurdTime marks a time that parsed but lies outside the plausible
// range.
var errAbsurdTime = errors.New("event time outside 1990..2200")

// decodeWindowsRows parses each windows_events row of one channel and hands
// it to decodeEvent, which returns a skip reason or "". Every skipped row is
// counted under its reason.
func decodeWindowsRows(rows []map[string]string, channel string, eventIDs []int, decodeEvent func(*Events, windowsEvent) string) *Events {
	events := NewEvents()

	// The fields of one row are no longer needed once it is decoded, so
	// every row reuses one buffer.
	var buf eventData
	for _, row := range rows {
		event, reason := parseWindowsRow(row, channel, eventIDs, buf)
		if event.data != nil {
			buf = event.data
		}
		if reason != "" {
			events.skip(reason)
			continue
		}

		if reason := decodeEvent(events, event); reason != "" {
			events.skip(reason)
		}
	}
	return events
}

// parseUTCTime parses an event time in UTC: osquery's datetime
// (`2020-09-20T16:16:56.5970000Z`) or Sysmon's UtcTime
// (`2020-09-20 16:16:56.597`, UTC without a zone). The resolution follows
// the number of fractional digits written: 7 digits 100 ns, 3 ms, none 1 s.
func parseUTCTime(s string) (detect.Timestamp, error) {
	s = strings.TrimSpace(s)
	if len(s) < len("2006-01-02 15:04:05") {
		return detect.Timestamp{}, fmt.Errorf("invalid time %q", s)
	}

	// Normalize to RFC 3339: a 'T' between date and time, and UTC when no
	// zone is written.
	if s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	if !hasZone(s) {
		s += "Z"
	}

	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return detect.Timestamp{}, fmt.Errorf("invalid time %q", s)
	}
	if !detect.PlausibleEventTime(t) {
		return detect.Timestamp{}, errAbsurdTime
	}

	return detect.Timestamp{UnixNano: t.UnixNano(), Resolution: resolutionOf(fractionDigits(s))}, nil
}

// hasZone reports whether an RFC 3339 time (date and clock already checked
// by length) ends in Z or a numeric offset.
func hasZone(s string) bool {
	clock := s[len("2006-01-02T"):]
	return strings.HasSuffix(clock, "Z") || strings.HasSuffix(clock, "z") || strings.ContainsAny(clock, "+-")
}

// fractionDigits counts the digits after the seconds' decimal point.
func fractionDigits(s string) int {
	dot := strings.IndexByte(s, '.')
	if dot < 0 {
		return 0
	}
	digits := 0
	for _, c := range s[dot+1:] {
		if c < '0' || c > '9' {
			break
		}
		digits++
	}
	return digits
}

// resolutionOf returns the resolution of a time written with the given
// number of fractional digits.
func resolutionOf(digits int) time.Duration {
	resolution := time.Second
	for range min(digits, 9) {
		resolution /= 10
	}
	return resolution
}

// timeSkipReason maps a parseUTCTime error to a skip reason.
func timeSkipReason(err error) string {
	if errors.Is(err, errAbsurdTime) {
		return SkipAbsurdTime
	}
	return SkipUnparsableTime
}

// isInbound reads a direction as any source writes it. known is false for a
// spelling it does not know.
func isInbound(direction string) (inbound, known bool) {
	switch strings.ToLower(strings.TrimSpace(direction)) {
	case "%%14592", "inbound", "ingress", "incoming", "accept":
		return true, true
	case "%%14593", "outbound", "egress", "outgoing", "connect":
		return false, true
	}
	return false, false
}
