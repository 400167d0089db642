package hunt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/internal/output"
	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// summary accumulates what the one-line summary on standard error reports.
type summary struct {
	files   int
	formats map[telemetry.Format]int
	loaded  map[string]int // table -> rows
	skipped map[string]int // reason -> events
	notes   map[string]int // note -> events loaded with less fidelity
	// skippedLines lists, by reason, the inputs with line numbers of
	// skipped events, in load order.
	skippedLines map[string][]inputLines
	offsets      map[string][]hostOffset
	// clock is the newest `time` value of all inputs, for the engine clock.
	clock int64
	// oldest is the oldest `time` value of all inputs, when hasOldest.
	oldest    int64
	hasOldest bool
	// hosts maps a table to the hosts its rows came from.
	hosts map[string]map[string]bool
	// forcedHosts are the host names of --utc-offset HOST=OFFSET, to warn
	// about names that match no host.
	forcedHosts []string
	// emptyInputs are the inputs that yielded no rows, in load order.
	emptyInputs []emptyInput
}

// inputLines are the first line numbers of one input's events skipped for
// one reason; more is true when the input skipped more events than listed.
type inputLines struct {
	input string
	lines []int
	more  bool
}

// hostOffset is one host's UTC offset as one input established it.
type hostOffset struct {
	input string
	info  telemetry.OffsetInfo
}

func newSummary() *summary {
	return &summary{
		formats:      map[telemetry.Format]int{},
		loaded:       map[string]int{},
		skipped:      map[string]int{},
		notes:        map[string]int{},
		skippedLines: map[string][]inputLines{},
		offsets:      map[string][]hostOffset{},
		hosts:        map[string]map[string]bool{},
	}
}

func (s *summary) addBatch(name string, b *telemetry.Batch) {
	s.files++
	s.formats[b.Format]++
	for table, rows := range b.Rows {
		s.loaded[table] += len(rows)
	}
	for reason, n := range b.Skipped {
		s.skipped[reason] += n
		if lines := b.SkippedLines[reason]; len(lines) > 0 {
			s.skippedLines[reason] = append(s.skippedLines[reason], inputLines{input: name, lines: lines, more: n > len(lines)})
		}
	}
	for note, n := range b.Notes {
		s.notes[note] += n
	}
	for host, info := range b.Offsets {
		s.offsets[host] = append(s.offsets[host], hostOffset{input: name, info: info})
	}
	s.clock = max(s.clock, b.Clock)

	for _, rows := range b.Rows {
		for _, row := range rows {
			t, err := strconv.ParseInt(row["time"], 10, 64)
			if err != nil {
				continue
			}
			if !s.hasOldest || t < s.oldest {
				s.oldest, s.hasOldest = t, true
			}
		}
	}
	for table, hosts := range b.Hosts {
		if s.hosts[table] == nil {
			s.hosts[table] = map[string]bool{}
		}
		for _, host := range hosts {
			s.hosts[table][host] = true
		}
	}
}

// hostOf returns the hosts whose rows are in any of tables, sorted, and the
// one host name to use for them: the only one, or all joined by commas.
func (s *summary) hostOf(tables []string) (string, []string) {
	set := map[string]bool{}
	for _, table := range tables {
		for host := range s.hosts[table] {
			set[host] = true
		}
	}
	hosts := sortedKeys(set)
	return strings.Join(hosts, ","), hosts
}

// line renders the summary. It ends with the number of rows printed, counted
// in noun ("detection" or "row"). Host names come from the telemetry, so the
// line is escaped like table output.
func (s *summary) line(command string, rows int, noun string) string {
	parts := []string{s.filesPart(), s.loadedPart(), s.skippedPart()}
	if notes := s.notesPart(); notes != "" {
		parts = append(parts, notes)
	}
	if offsets := s.offsetsPart(); offsets != "" {
		parts = append(parts, offsets)
	}
	parts = append(parts, plural(rows, noun))

	var b strings.Builder
	for _, warning := range s.offsetWarnings() {
		b.WriteString(output.EscapeText("svclaunch "+command+": warning: "+warning) + "\n")
	}
	b.WriteString(output.EscapeText("svclaunch "+command+": "+strings.Join(parts, "; ")) + "\n")
	return b.String()
}

// offsetWarnings returns one message per host whose learned offset and
// --utc-offset disagree, and per --utc-offset HOST that matched no host
// with zone-less local times.
func (s *summary) offsetWarnings() []string {
	var warnings []string
	for _, host := range sortedKeys(s.offsets) {
		for _, e := range s.offsets[host] {
			if e.info.Conflict == nil {
				continue
			}
			switch e.info.Method {
			case telemetry.OffsetFlag:
				warnings = append(warnings, fmt.Sprintf("%s: --utc-offset %s replaces the offset %s learned from its events in %s",
					host, formatOffset(e.info.Offset), formatOffset(*e.info.Conflict), e.input))
			case telemetry.OffsetLearned:
				warnings = append(warnings, fmt.Sprintf("%s: kept the offset %s learned from its events in %s, not --utc-offset %s; give --utc-offset %s=%s to force it",
					host, formatOffset(e.info.Offset), e.input, formatOffset(*e.info.Conflict), host, formatOffset(*e.info.Conflict)))
			}
		}
	}

	for _, name := range s.forcedHosts {
		matched := false
		for host := range s.offsets {
			matched = matched || telemetry.HostMatches(name, host)
		}
		if !matched {
			warnings = append(warnings, fmt.Sprintf("--utc-offset %s=...: no loaded event with a zone-less local time names this host; check the host name", name))
		}
	}
	return warnings
}

func (s *summary) filesPart() string {
	formats := make([]string, 0, len(s.formats))
	for _, f := range sortedKeys(s.formats) {
		formats = append(formats, string(f))
	}
	if len(formats) == 0 {
		return plural(s.files, "file")
	}
	return fmt.Sprintf("%s (%s)", plural(s.files, "file"), strings.Join(formats, ", "))
}

func (s *summary) loadedPart() string {
	if len(s.loaded) == 0 {
		return "loaded no rows"
	}
	tables := make([]string, 0, len(s.loaded))
	for _, table := range sortedKeys(s.loaded) {
		tables = append(tables, fmt.Sprintf("%s %d", table, s.loaded[table]))
	}
	return "loaded " + strings.Join(tables, ", ")
}

func (s *summary) skippedPart() string {
	total := 0
	reasons := make([]string, 0, len(s.skipped))
	for _, reason := range sortedKeys(s.skipped) {
		total += s.skipped[reason]
		text := fmt.Sprintf("%s: %d", reason, s.skipped[reason])
		if where := s.skippedLinesPart(reason); where != "" {
			text += " [" + where + "]"
		}
		reasons = append(reasons, text)
	}
	if total == 0 {
		return "skipped 0 events"
	}
	return fmt.Sprintf("skipped %s (%s)", plural(total, "event"), strings.Join(reasons, ", "))
}

// notesPart lists, by note, the number of events loaded with less fidelity
// than osquery would give, or returns "" when there are none. One event can
// carry several notes, so the counts are not added up.
func (s *summary) notesPart() string {
	notes := make([]string, 0, len(s.notes))
	for _, note := range sortedKeys(s.notes) {
		if s.notes[note] > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d", note, s.notes[note]))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return "notes (" + strings.Join(notes, ", ") + ")"
}

// skippedLinesPart renders where the events skipped for reason were, such
// as "a.json lines 17, 204, ...; b.json line 3". The "..." marks an input
// with more skipped events than the loader listed.
func (s *summary) skippedLinesPart(reason string) string {
	var inputs []string
	for _, in := range s.skippedLines[reason] {
		numbers := make([]string, 0, len(in.lines)+1)
		for _, n := range in.lines {
			numbers = append(numbers, strconv.Itoa(n))
		}
		if in.more {
			numbers = append(numbers, "...")
		}
		noun := "lines"
		if len(in.lines) == 1 && !in.more {
			noun = "line"
		}
		inputs = append(inputs, in.input+" "+noun+" "+strings.Join(numbers, ", "))
	}
	return strings.Join(inputs, "; ")
}

// offsetsPart lists each host with zone-less local times, its offset and how
// it was found. An input that disagrees with another about a host is shown
// with the input's name.
func (s *summary) offsetsPart() string {
	if len(s.offsets) == 0 {
		return ""
	}

	var hosts []string
	for _, host := range sortedKeys(s.offsets) {
		entries := s.offsets[host]
		sameEverywhere := true
		for _, e := range entries[1:] {
			if e.info.Method != entries[0].info.Method || e.info.Offset != entries[0].info.Offset {
				sameEverywhere = false
			}
		}

		var descriptions []string
		if sameEverywhere {
			merged := entries[0].info
			for _, e := range entries[1:] {
				merged.Events += e.info.Events
				merged.Skipped += e.info.Skipped
				merged.Disagreeing += e.info.Disagreeing
			}
			descriptions = append(descriptions, describeOffset(merged))
		} else {
			for _, e := range entries {
				descriptions = append(descriptions, describeOffset(e.info)+" in "+e.input)
			}
		}
		hosts = append(hosts, host+" "+strings.Join(descriptions, ", "))
	}

	return "UTC offset " + strings.Join(hosts, ", ")
}

// describeOffset renders one host's offset, such as "-04:00 learned from 23
// events" or "unknown (2 events skipped: set --utc-offset)".
func describeOffset(info telemetry.OffsetInfo) string {
	switch info.Method {
	case telemetry.OffsetLearned:
		text := fmt.Sprintf("%s learned from %s", formatOffset(info.Offset), plural(info.Events, "event"))
		if info.From != "" {
			text += " of " + info.From
		}
		if info.Disagreeing > 0 {
			text += fmt.Sprintf(" (%d disagreed)", info.Disagreeing)
		}
		return text
	case telemetry.OffsetFlag:
		text := formatOffset(info.Offset) + " from --utc-offset"
		if info.Conflict != nil {
			text += fmt.Sprintf(" (learned %s)", formatOffset(*info.Conflict))
		}
		return text
	case telemetry.OffsetDefault:
		return formatOffset(info.Offset) + " from --utc-offset (not learned)"
	default:
		if info.Skipped > 0 {
			return fmt.Sprintf("unknown (%s skipped: set --utc-offset)", plural(info.Skipped, "event"))
		}
		return "unknown"
	}
}

// formatOffset renders an offset as ±HH:MM.
func formatOffset(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	return fmt.Sprintf("%s%02d:%02d", sign, int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// plural renders a count with its noun, adding "s" unless the count is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
