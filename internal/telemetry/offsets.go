package telemetry

import (
	"math"
	"net"
	"sort"
	"strings"
	"time"
)

// offsetStep is the grid that learned offsets snap to. Every UTC offset in
// use is a multiple of 15 minutes (Nepal's +05:45 included). The snap absorbs
// the few seconds by which a collector's EventTime trails Sysmon's UtcTime.
const offsetStep = 15 * time.Minute

// utc converts a stamp to UTC. A local stamp needs a learned or flagged
// offset; ok is false without one.
func (s stamp) utc(info OffsetInfo) (time.Time, bool) {
	if !s.local {
		return s.wall, true
	}
	if info.Method == OffsetUnknown || info.Method == "" {
		return time.Time{}, false
	}
	return s.wall.Add(-info.Offset), true
}

// roundOffset snaps local-minus-UTC to the nearest multiple of offsetStep.
func roundOffset(d time.Duration) time.Duration {
	steps := math.Round(float64(d) / float64(offsetStep))
	return time.Duration(steps) * offsetStep
}

// resolveOffsets returns the offset of every host that has zone-less local
// times. Each host's offset is the most common rounded difference between
// its events' local time and their UTC hint. A host without hints borrows
// the offset of a host with the same first DNS label (case-insensitive),
// because one computer writes both "WORKSTATION6" and
// "WORKSTATION6.theshire.local". Then opts.UTCOffset or opts.HostUTCOffsets
// replace learned offsets, and opts.DefaultUTCOffset places the hosts still
// without one. Hosts left without an offset are recorded as OffsetUnknown.
func resolveOffsets(events []winEvent, opts Options) map[string]OffsetInfo {
	out := map[string]OffsetInfo{}
	votes := map[string]map[time.Duration]int{}

	for i := range events {
		ev := &events[i]
		if !ev.created.local && !ev.received.local {
			continue
		}
		if _, seen := out[ev.computer]; !seen {
			out[ev.computer] = OffsetInfo{Method: OffsetUnknown}
		}
		// Offsets are learned even when a flag forces them, so that a
		// forced offset that contradicts the events can be reported.
		if !ev.created.local || !ev.utcHint.set || ev.utcHint.local {
			continue
		}

		offset := roundOffset(ev.created.wall.Sub(ev.utcHint.wall))
		if votes[ev.computer] == nil {
			votes[ev.computer] = map[time.Duration]int{}
		}
		votes[ev.computer][offset]++
	}

	for host, counts := range votes {
		out[host] = majorityOffset(counts)
	}

	// Hosts without hints borrow from a host with the same short name. The
	// hosts are visited in sorted order so that the choice is stable.
	for _, host := range sortedKeys(out) {
		if out[host].Method != OffsetUnknown {
			continue
		}
		best := ""
		for _, other := range sortedKeys(votes) {
			if other == host || !sameShortName(host, other) {
				continue
			}
			if best == "" || out[other].Events > out[best].Events {
				best = other
			}
		}
		if best != "" {
			info := out[best]
			info.From = best
			out[host] = info
		}
	}

	for host, info := range out {
		out[host] = applyFlagOffsets(host, info, opts)
	}
	return out
}

// applyFlagOffsets returns the offset of host after the options: a forced
// offset replaces the learned one, and the default fills an unknown one. A
// disagreeing offset is kept in Conflict for the caller's warning.
func applyFlagOffsets(host string, learned OffsetInfo, opts Options) OffsetInfo {
	if forced, ok := forcedOffset(host, opts); ok {
		info := OffsetInfo{Offset: forced, Method: OffsetFlag}
		if learned.Method == OffsetLearned && learned.Offset != forced {
			info.Conflict = &learned.Offset
		}
		return info
	}
	if opts.DefaultUTCOffset == nil {
		return learned
	}

	switch {
	case learned.Method == OffsetUnknown:
		return OffsetInfo{Offset: *opts.DefaultUTCOffset, Method: OffsetDefault}
	case learned.Method == OffsetLearned && learned.Offset != *opts.DefaultUTCOffset:
		fallback := *opts.DefaultUTCOffset
		learned.Conflict = &fallback
	}
	return learned
}

// forcedOffset returns the offset that opts forces on host: UTCOffset, or
// the HostUTCOffsets entry whose name equals host case-insensitively, or
// else one with the same first DNS label (the lowest name when several do).
func forcedOffset(host string, opts Options) (time.Duration, bool) {
	if opts.UTCOffset != nil {
		return *opts.UTCOffset, true
	}
	for _, name := range sortedKeys(opts.HostUTCOffsets) {
		if strings.EqualFold(name, host) {
			return opts.HostUTCOffsets[name], true
		}
	}
	for _, name := range sortedKeys(opts.HostUTCOffsets) {
		if sameShortName(name, host) {
			return opts.HostUTCOffsets[name], true
		}
	}
	return 0, false
}

// HostMatches reports whether name, as given in Options.HostUTCOffsets,
// matches host: case-insensitively, or by the first DNS label.
func HostMatches(name, host string) bool {
	return strings.EqualFold(name, host) || sameShortName(name, host)
}

// majorityOffset picks the most common offset. A tie goes to the offset
// closer to zero, then to the smaller one, so the result does not depend on
// map order.
func majorityOffset(counts map[time.Duration]int) OffsetInfo {
	var best time.Duration
	bestCount, total := -1, 0
	for offset, n := range counts {
		total += n
		switch {
		case n > bestCount:
		case n == bestCount && absDuration(offset) < absDuration(best):
		case n == bestCount && absDuration(offset) == absDuration(best) && offset < best:
		default:
			continue
		}
		best, bestCount = offset, n
	}
	return OffsetInfo{Offset: best, Method: OffsetLearned, Events: bestCount, Disagreeing: total - bestCount}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// shortName returns a host's first DNS label in lower case; an IP address
// is returned whole so that 10.0.0.1 and 10.0.0.2 stay apart.
func shortName(host string) string {
	if net.ParseIP(host) != nil {
		return host
	}
	if i := strings.IndexByte(host, '.'); i >= 0 {
		host = host[:i]
	}
	return strings.ToLower(host)
}

func sameShortName(a, b string) bool {
	return a != "" && shortName(a) == shortName(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
