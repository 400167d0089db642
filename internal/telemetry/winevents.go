package telemetry

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// WindowsEventsTable is the osquery table that Windows events load into.
const WindowsEventsTable = "windows_events"

// winEvent is one Windows event decoded from any layout, before its times
// are placed in UTC.
type winEvent struct {
	// line is the input line of the event, counting from 1; 0 for .evtx.
	line         int
	computer     string
	channel      string
	provider     string
	providerGUID string
	eventID      string
	task         string // "" when the layout does not carry it
	level        string
	keywords     string
	// created is the event's own time (TimeCreated); received is when a
	// collector received it, and is zero when the layout has no such time.
	created  stamp
	received stamp
	// utcHint is a UTC time the event carries besides a local created
	// time (Sysmon's UtcTime), used to learn the host's offset.
	utcHint stamp
	data    []dataField
	// userData marks data that came from an event's UserData element.
	userData bool
}

// dataField is one EventData value, in the event's order. An empty name
// marks a <Data> element without a Name attribute.
type dataField struct {
	name  string
	value string
}

// stamp is a time as the source wrote it.
type stamp struct {
	// wall is the written clock reading. For a local stamp it is labelled
	// UTC but is the host's local time.
	wall time.Time
	// local marks a zone-less local time.
	local bool
	// fraction marks a source with sub-second digits.
	fraction bool
	set      bool
}

// utcStamp returns a stamp of a time already in UTC.
func utcStamp(t time.Time, fraction bool) stamp {
	return stamp{wall: t.UTC(), fraction: fraction, set: true}
}

// parseTimestamp parses "YYYY-MM-DD hh:mm:ss" or its ISO 8601 form with a
// 'T', optional fractional seconds (up to 9 digits are kept) and an
// optional zone ("Z", "+hh:mm", "+hhmm", "+hh"). A time with a zone is
// converted to UTC; one without a zone is returned with zoned = false and
// its clock reading labelled UTC.
func parseTimestamp(s string) (t time.Time, fraction, zoned, ok bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false, false, false
	}

	year, ok1 := atoiFixed(s[0:4])
	month, ok2 := atoiFixed(s[5:7])
	day, ok3 := atoiFixed(s[8:10])
	hour, ok4 := atoiFixed(s[11:13])
	minute, ok5 := atoiFixed(s[14:16])
	second, ok6 := atoiFixed(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, false, false, false
	}

	rest := s[19:]
	nanos := 0
	if strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, ",") {
		digits := 0
		i := 1
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			if digits < 9 {
				nanos = nanos*10 + int(rest[i]-'0')
				digits++
			}
		}
		if i == 1 {
			return time.Time{}, false, false, false
		}
		for ; digits < 9; digits++ {
			nanos *= 10
		}
		fraction = true
		rest = rest[i:]
	}

	zone := 0
	switch {
	case rest == "":
	case rest == "Z" || rest == "z":
		zoned = true
	case rest[0] == '+' || rest[0] == '-':
		sign := 1
		if rest[0] == '-' {
			sign = -1
		}
		digits := strings.ReplaceAll(rest[1:], ":", "")
		if len(digits) != 2 && len(digits) != 4 {
			return time.Time{}, false, false, false
		}
		hh, okH := atoiFixed(digits[0:2])
		mm := 0
		okM := true
		if len(digits) == 4 {
			mm, okM = atoiFixed(digits[2:4])
		}
		if !okH || !okM || hh > 23 || mm > 59 {
			return time.Time{}, false, false, false
		}
		zone = sign * (hh*3600 + mm*60)
		zoned = true
	default:
		return time.Time{}, false, false, false
	}

	t = time.Date(year, time.Month(month), day, hour, minute, second, nanos, time.UTC)
	// time.Date normalises out-of-range fields; a changed field means the
	// input was not a valid date.
	if t.Year() != year || int(t.Month()) != month || t.Day() != day || t.Hour() != hour || t.Minute() != minute || t.Second() != second {
		return time.Time{}, false, false, false
	}
	t = t.Add(-time.Duration(zone) * time.Second)
	return t, fraction, zoned, true
}

func atoiFixed(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Layouts of windows_events.datetime. osquery copies TimeCreated's
// SystemTime, which Windows renders with 7 fractional digits (100 ns).
// Sources with sub-second digits are written in that form, with zeros for
// the digits the source did not have, so python-evtx's microseconds gain one
// trailing 0. Whole-second sources (NXLog EventTime) keep no fraction at
// all, because ".0000000" would read as a measured value.
const (
	datetimeFraction = "2006-01-02T15:04:05.0000000Z"
	datetimeSeconds  = "2006-01-02T15:04:05Z"
)

// FormatDatetime renders a UTC time as windows_events.datetime: with 7
// fractional digits when the source had sub-second precision, and without
// a fraction for whole-second sources.
func FormatDatetime(t time.Time, subsecond bool) string {
	if subsecond {
		return t.UTC().Format(datetimeFraction)
	}
	return t.UTC().Format(datetimeSeconds)
}

// eventDataJSON renders EventData as osquery's windows_events.data:
// {"EventData":{"Name":"value",...}} in the event's order, or a JSON array
// when the event's first <Data> element has no Name. osquery builds this
// text with Boost.PropertyTree's write_json, so the escaping below follows
// it; an empty EventData becomes {"EventData":""} as write_json writes an
// empty tree.
func eventDataJSON(fields []dataField, userData bool) string {
	var sb strings.Builder
	sb.Grow(64 + 32*len(fields))

	element := "EventData"
	if userData {
		element = "UserData"
	}
	sb.WriteString(`{"`)
	sb.WriteString(element)
	sb.WriteString(`":`)

	switch {
	case len(fields) == 0:
		sb.WriteString(`""`)
	case fields[0].name == "":
		sb.WriteByte('[')
		for i, f := range fields {
			if i > 0 {
				sb.WriteByte(',')
			}
			writeBoostString(&sb, f.value)
		}
		sb.WriteByte(']')
	default:
		sb.WriteByte('{')
		for i, f := range fields {
			if i > 0 {
				sb.WriteByte(',')
			}
			writeBoostString(&sb, f.name)
			sb.WriteByte(':')
			writeBoostString(&sb, f.value)
		}
		sb.WriteByte('}')
	}

	sb.WriteByte('}')
	return sb.String()
}

// writeBoostString writes s as a JSON string escaped the way Boost's
// property_tree JSON writer escapes it: '"', '\\' and '/' get a backslash,
// control characters use their short escape or \u00XX, and every other
// byte, UTF-8 included, is copied.
func writeBoostString(sb *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"

	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '/':
			sb.WriteString(`\/`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		default:
			if c < 0x20 {
				sb.WriteString(`\u00`)
				sb.WriteByte(hexDigits[c>>4])
				sb.WriteByte(hexDigits[c&0xF])
			} else {
				sb.WriteByte(c)
			}
		}
	}
	sb.WriteByte('"')
}

// eventCollector buffers the events of one input, learns the hosts' UTC
// offsets once every event is known, and then writes windows_events rows.
type eventCollector struct {
	b           *Batch
	opts        Options
	decodeEvent func(object) (winEvent, string)
	events      []winEvent
}

func newEventCollector(b *Batch, opts Options, decodeEvent func(object) (winEvent, string)) *eventCollector {
	return &eventCollector{b: b, opts: opts, decodeEvent: decodeEvent}
}

// decode buffers one event, or counts it as skipped with the decoder's reason.
func (c *eventCollector) decode(obj object, lineNumber int) {
	ev, reason := c.decodeEvent(obj)
	if reason != "" {
		c.b.skipAt(reason, lineNumber)
		return
	}
	ev.line = lineNumber
	c.events = append(c.events, ev)
}

func (c *eventCollector) finish() {
	addWindowsEvents(c.b, c.events, c.opts)
}

// addWindowsEvents learns the offsets of the events' hosts and adds one
// windows_events row per event whose times can be placed in UTC.
func addWindowsEvents(b *Batch, events []winEvent, opts Options) {
	offsets := resolveOffsets(events, opts)

	for i := range events {
		ev := &events[i]

		created, ok := ev.created.utc(offsets[ev.computer])
		if !ok {
			info := offsets[ev.computer]
			info.Skipped++
			offsets[ev.computer] = info
			b.skipAt(SkipUnknownOffset, ev.line)
			continue
		}
		received := created
		if ev.received.set {
			if received, ok = ev.received.utc(offsets[ev.computer]); !ok {
				received = created
			}
		}

		// The table's sources would skip such an event too, and it would
		// move the replay's clock, and with it every lookback, by years.
		if !detect.PlausibleEventTime(created) || !detect.PlausibleEventTime(received) {
			b.skipAt(SkipImplausibleTime, ev.line)
			continue
		}

		row := map[string]string{
			"time":          strconv.FormatInt(received.Unix(), 10),
			"datetime":      FormatDatetime(created, ev.created.fraction),
			"source":        ev.channel,
			"provider_name": ev.provider,
			"provider_guid": ev.providerGUID,
			"computer_name": ev.computer,
			"eventid":       ev.eventID,
			"data":          eventDataJSON(ev.data, ev.userData),
			"eid":           eventID(len(b.Rows[WindowsEventsTable]) + 1),
		}
		// Columns the layout lacks stay absent so that they read as NULL
		// rather than as a made-up value.
		setIfKnown(row, "task", ev.task)
		setIfKnown(row, "level", ev.level)
		setIfKnown(row, "keywords", ev.keywords)

		b.add(WindowsEventsTable, ev.computer, row)
		b.advanceClock(received.Unix())
	}

	for host, info := range offsets {
		b.Offsets[host] = info
	}
}

// eventID returns the hidden eid column. osquery gives every stored event an
// id; the loader numbers the events of one input in load order.
func eventID(n int) string {
	return fmt.Sprintf("%010d", n)
}

func setIfKnown(row map[string]string, column, value string) {
	if value != "" {
		row[column] = value
	}
}
