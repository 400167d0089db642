package detect

import "time"

// Bounds of a plausible event time. Anything outside is a broken clock, a
// damaged record or a zero FILETIME (1601-01-01), and would only produce
// false matches.
var (
	EarliestEventTime = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	LatestEventTime   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// PlausibleEventTime reports whether t lies in [EarliestEventTime,
// LatestEventTime).
func PlausibleEventTime(t time.Time) bool {
	return !t.Before(EarliestEventTime) && t.Before(LatestEventTime)
}
