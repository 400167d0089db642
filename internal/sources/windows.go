package sources

import (
	"bytes"
	"encoding/json"
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

// eventData holds the EventData values of an event by field name. Names are
// matched exactly: a forwarder's header field `ProcessID` must not stand in
// for Sysmon's own `ProcessId`.
type eventData map[string]string

// get returns a field's value with surrounding space removed; "" when the
// field is missing.
func (d eventData) get(name string) string {
	return strings.TrimSpace(d[name])
}

// errNoEventData marks data that is valid JSON without an EventData object.
var errNoEventData = errors.New("data has no EventData object")

// parseWindowsRow decodes the columns every Windows source needs, for a row
// of channel with one of eventIDs. It returns the skip reason when the row
// cannot be used.
func parseWindowsRow(row map[string]string, channel string, eventIDs []int) (windowsEvent, string) {
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

	data, err := parseEventData(row["data"])
	if errors.Is(err, errNoEventData) {
		return event, SkipMissingField
	}
	if err != nil {
		return event, SkipInvalidJSON
	}
	event.data = data
	return event, ""
}

// parseEventData decodes osquery's windows_events data column,
// `{"EventData":{"Name":"value",...}}`. osquery writes every value as a
// string. Numbers and booleans from other writers are converted to text, and
// null values are left out as if the field were missing.
func parseEventData(data string) (eventData, error) {
	var envelope map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &envelope); err != nil {
		return nil, fmt.Errorf("decoding data: %w", err)
	}

	raw, ok := envelope["EventData"]
	if !ok || len(raw) == 0 || raw[0] != '{' {
		// An array means the event's <Data> elements had no Name
		// attributes, so no field can be found by name.
		return nil, errNoEventData
	}

	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var values map[string]any
	if err := decoder.Decode(&values); err != nil {
		return nil, fmt.Errorf("decoding EventData: %w", err)
	}

	out := make(eventData, len(values))
	for name, value := range values {
		switch v := value.(type) {
		case string:
			out[name] = v
		case json.Number:
			out[name] = v.String()
		case bool:
			out[name] = strconv.FormatBool(v)
		}
	}
	return out, nil
}

// Bounds of a plausible event time. Anything outside is a broken clock or a
// zero FILETIME (1601-01-01), and would only produce false matches.
var (
	earliestEventTime = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	latestEventTime   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// errAbsurdTime marks a time that parsed but lies outside the plausible
// range.
var errAbsurdTime = errors.New("event time outside 1990..2200")

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
	if t.Before(earliestEventTime) || !t.Before(latestEventTime) {
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
