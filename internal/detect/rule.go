package detect

import (
	"net/netip"
	"strings"
	"time"
)

// baseName returns the last element of an image path in any of the forms the
// sources write: Windows drive paths, NT device paths and Unix paths. Both
// separators are accepted on every platform because the events come from
// other machines.
func baseName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '\\' || path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}

// isParentName reports whether the image path names a service control
// manager from names, ignoring case.
func isParentName(path string, names []string) bool {
	base := baseName(path)
	if base == "" {
		return false
	}

	for _, name := range names {
		if strings.EqualFold(base, name) {
			return true
		}
	}
	return false
}

// parseAddr parses an address as the sources write it and normalizes it for
// comparison. It drops the zone, because one source writes it and another
// does not, and turns IPv4-mapped IPv6 addresses into IPv4.
func parseAddr(s string) (netip.Addr, bool) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.WithZone("").Unmap(), true
}

// hostAddressSet maps each host to its own addresses, parsed once.
type hostAddressSet map[string][]netip.Addr

// newHostAddressSet parses opts.HostAddresses. Entries that do not parse are
// ignored, because they cannot equal a parsed remote address anyway.
func newHostAddressSet(byHost map[string][]string) hostAddressSet {
	set := make(hostAddressSet, len(byHost))
	for host, list := range byHost {
		parsed := make([]netip.Addr, 0, len(list))
		for _, s := range list {
			if addr, ok := parseAddr(s); ok {
				parsed = append(parsed, addr)
			}
		}
		set[host] = parsed
	}
	return set
}

// isLoopback reports whether a connection's remote address, parsed by
// parseAddr, is the host itself: 127.0.0.0/8, ::1, an IPv4-mapped loopback
// address, or one of the host's own addresses. An address that did not parse
// is not loopback, because a missing or garbled peer must not hide a remote
// launch.
func (set hostAddressSet) isLoopback(host string, addr netip.Addr, parsed bool) bool {
	if !parsed {
		return false
	}
	if addr.IsLoopback() {
		return true
	}

	for _, own := range set[host] {
		if addr == own {
			return true
		}
	}
	return false
}

// resolution returns the width of the timestamp's interval. A zero or
// negative resolution is read as one nanosecond, so that an exact instant
// still forms a non-empty interval and a delay of 0 matches.
func resolution(t Timestamp) int64 {
	if t.Resolution <= 0 {
		return 1
	}
	return int64(t.Resolution)
}

// timeMatches applies the time condition on intervals: the child P and the
// connection C match if some instants p' in P's interval and c' in C's
// interval satisfy -tolerance <= p' - c' <= window. The differences p' - c'
// fill the open interval (dMin, dMax), so the condition is dMin < window and
// dMax > -tolerance.
func timeMatches(child, conn Timestamp, window, tolerance time.Duration) bool {
	dMin := child.UnixNano - (conn.UnixNano + resolution(conn))
	dMax := child.UnixNano + resolution(child) - conn.UnixNano
	return dMin < int64(window) && dMax > -int64(tolerance)
}

// precisionName names the coarser of two resolutions as one of the Precision
// constants.
// NOTE: there are only three names, so a 1 ns or 1 µs source reports
// "100ns" and anything coarser than 1 ms reports "s".
func precisionName(a, b time.Duration) string {
	coarser := max(a, b)
	switch {
	case coarser <= ResolutionFiletime:
		return Precision100ns
	case coarser <= ResolutionMillisecond:
		return PrecisionMillisecond
	default:
		return PrecisionSecond
	}
}

// delayMillis returns the child's start minus the connection's, both taken
// at the start of their intervals, in whole milliseconds clamped to
// [0, window]. The clamp keeps the column within the rule's own bounds when
// the intervals, not their starts, made the match.
func delayMillis(child, conn Timestamp, window time.Duration) int64 {
	delay := (child.UnixNano - conn.UnixNano) / int64(time.Millisecond)
	return min(max(delay, 0), window.Milliseconds())
}
