package sourcehealth

import (
	"maps"
	"sync"
	"time"
)

// Read is the outcome of the detection's last read of one source.
type Read struct {
	// Time is when the read ended.
	Time time.Time
	// Rows is the number of rows osquery returned.
	Rows int
	// Skipped counts the rows the decoder could not use, by reason
	// (sources.Skip*).
	Skipped map[string]int
	// RowCap is the row cap when the read returned that many rows, so
	// that older events may have been left unread, and 0 otherwise.
	RowCap int
	// Err is the error text when the read failed.
	Err string
	// NotRead is the reason the source was not queried (a discovery
	// status such as "disabled"), or "" when it was.
	NotRead string
}

// SkippedTotal returns the number of skipped rows over all reasons.
func (r Read) SkippedTotal() int {
	total := 0
	for _, n := range r.Skipped {
		total += n
	}
	return total
}

// MainSkipReason returns the reason that skipped the most rows, the first
// in name order among equals, or "" when no row was skipped.
func (r Read) MainSkipReason() string {
	reason, most := "", 0
	for name, n := range r.Skipped {
		if n > most || n == most && n > 0 && name < reason {
			reason, most = name, n
		}
	}
	return reason
}

// Stats keeps the last Read of each source, so that the
// remote_service_launch_sources table can show what the last generate of
// remote_service_launches met. Its methods are safe for concurrent use.
type Stats struct {
	mu    sync.Mutex
	reads map[string]Read
}

// NewStats returns an empty Stats.
func NewStats() *Stats {
	return &Stats{reads: map[string]Read{}}
}

// Record stores r as the last read of source. The skip counts are copied,
// so the caller may reuse its map.
func (s *Stats) Record(source string, r Read) {
	r.Skipped = maps.Clone(r.Skipped)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads[source] = r
}

// Last returns the last read of source, and false when there was none.
func (s *Stats) Last(source string) (Read, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	r, ok := s.reads[source]
	r.Skipped = maps.Clone(r.Skipped)
	return r, ok
}
