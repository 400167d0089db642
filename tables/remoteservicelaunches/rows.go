package remoteservicelaunches

import (
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// detectionRow converts a detection into an output row. Every value depends
// on the events alone, never on when the query ran, so a scheduled query
// logs no difference while nothing new happened.
func detectionRow(d detect.Detection) map[string]string {
	p, c := d.Process, d.Connection
	return map[string]string{
		"time":                strconv.FormatInt(unixSeconds(p.Time), 10),
		"datetime":            formatTimestamp(p.Time),
		"host":                p.Host,
		"pid":                 strconv.FormatInt(p.PID, 10),
		"path":                p.Path,
		"cmdline":             p.Cmdline,
		"username":            p.Username,
		"parent":              strconv.FormatInt(p.ParentPID, 10),
		"parent_path":         p.ParentPath,
		"connection_time":     strconv.FormatInt(unixSeconds(c.Time), 10),
		"connection_datetime": formatTimestamp(c.Time),
		"protocol":            c.Protocol,
		"local_address":       c.LocalAddress,
		"local_port":          strconv.Itoa(c.LocalPort),
		"remote_address":      c.RemoteAddress,
		"remote_port":         strconv.Itoa(c.RemotePort),
		"delay_ms":            strconv.FormatInt(d.DelayMillis, 10),
		"time_precision":      d.Precision,
		"connection_count":    strconv.Itoa(d.ConnectionCount),
		"process_sources":     strings.Join(p.Sources, ","),
		"connection_sources":  strings.Join(c.Sources, ","),
	}
}

// unixSeconds returns the whole second a timestamp starts in, rounding
// towards minus infinity.
func unixSeconds(t detect.Timestamp) int64 {
	seconds := t.UnixNano / int64(time.Second)
	if t.UnixNano%int64(time.Second) < 0 {
		seconds--
	}
	return seconds
}

// formatTimestamp writes a timestamp as ISO 8601 UTC with the fractional
// digits its resolution has: 7 for 100 ns, 3 for milliseconds, none for
// whole seconds.
func formatTimestamp(t detect.Timestamp) string {
	digits := 0
	for step := time.Second; step > t.Resolution && digits < 9; step /= 10 {
		digits++
	}

	layout := "2006-01-02T15:04:05"
	if digits > 0 {
		layout += "." + strings.Repeat("0", digits)
	}
	return t.Time().Format(layout + "Z")
}
