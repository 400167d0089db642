package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// The fuzz targets below run their seeds in every `go test`. The seeds are
// the files under testdata/fuzz/<target> (hand-written cases and every input
// a fuzzer once failed on) and, when SVCLAUNCH_TESTDATA is set, rows of the
// real recordings. Run one for longer with, for example:
//
//	go test ./internal/sources -run '^$' -fuzz '^FuzzParseEventData$' -fuzztime 3m -parallel 1

// recordedRows returns windows_events rows of the Sysmon and Security events
// that the sources read, loaded from a few lines of each recording layout,
// or nil when SVCLAUNCH_TESTDATA is unset.
func recordedRows(f *testing.F) []map[string]string {
	f.Helper()

	eventIDs := [][]byte{
		[]byte(`"EventID":1,`), []byte(`"EventID":3,`), []byte(`"EventID":4688,`), []byte(`"EventID":5156,`),
		[]byte(`"EventID": 1,`), []byte(`"EventID": 3,`), []byte(`"EventID": 4688,`), []byte(`"EventID": 5156,`),
	}
	keep := func(line []byte) bool {
		for _, id := range eventIDs {
			if bytes.Contains(line, id) {
				return true
			}
		}
		return false
	}

	// NXLog's zone-less local times need an offset; the lab ran on UTC-4.
	offset := -4 * time.Hour
	var rows []map[string]string
	for _, recording := range []string{testrecordings.EmpirePsExec, testrecordings.MeterpreterPsExecJSONL} {
		lines := testrecordings.Seeds(f, recording, 40, keep)
		if lines == nil {
			return nil
		}
		batch, err := telemetry.Load(context.Background(), bytes.NewReader(bytes.Join(lines, []byte("\n"))), recording,
			telemetry.Options{UTCOffset: &offset})
		require.NoError(f, err)
		rows = append(rows, batch.Rows[telemetry.WindowsEventsTable]...)
	}
	return rows
}

// FuzzParseEventData checks the windows_events data decoder against
// encoding/json: the scanner may accept only what encoding/json accepts and
// must read the same values, and anything else falls back to encoding/json.
func FuzzParseEventData(f *testing.F) {
	for _, row := range recordedRows(f) {
		f.Add(row["data"])
	}

	f.Fuzz(func(t *testing.T, data string) {
		want, wantErr := decodeEventData(data)

		if scanned, ok := scanEventData(data, nil); ok {
			require.True(t, json.Valid([]byte(data)), "the scanner accepted invalid JSON")
			require.NoError(t, wantErr, "the scanner accepted data that encoding/json rejects")
			require.Equal(t, fieldValues(want), fieldValues(scanned))
			require.Equal(t, len(want), len(scanned), "number of fields")
		}

		got, err := parseEventData(data, nil)
		if wantErr != nil {
			require.Error(t, err)
			require.Equal(t, errors.Is(wantErr, errNoEventData), errors.Is(err, errNoEventData), "error %v", err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, fieldValues(want), fieldValues(got))
		for _, field := range got {
			require.True(t, utf8.ValidString(got.raw(field.name)), "value of %q is not valid UTF-8", field.name)
		}
	})
}

// decodeOutcomes counts what decoding produced: process starts, inbound
// connections and skipped rows.
func decodeOutcomes(events *Events) int {
	return len(events.Processes) + len(events.Connections) + events.SkippedTotal()
}

// requirePlausibleEvents checks the invariants every decoded event keeps,
// whatever the row held.
func requirePlausibleEvents(t *testing.T, events *Events) {
	t.Helper()

	for _, p := range events.Processes {
		require.GreaterOrEqual(t, p.PID, detect.UnknownPID)
		require.GreaterOrEqual(t, p.ParentPID, detect.UnknownPID)
		require.False(t, p.Time.Time().Before(detect.EarliestEventTime), "process time %v", p.Time.Time())
		require.True(t, p.Time.Time().Before(detect.LatestEventTime), "process time %v", p.Time.Time())
		require.Positive(t, p.Time.Resolution)
	}
	for _, c := range events.Connections {
		require.GreaterOrEqual(t, c.PID, detect.UnknownPID)
		require.True(t, c.LocalPort >= 0 && c.LocalPort <= 65535, "local port %d", c.LocalPort)
		require.True(t, c.RemotePort >= 0 && c.RemotePort <= 65535, "remote port %d", c.RemotePort)
		require.False(t, c.Time.Time().Before(detect.EarliestEventTime), "connection time %v", c.Time.Time())
		require.True(t, c.Time.Time().Before(detect.LatestEventTime), "connection time %v", c.Time.Time())
	}
}

// FuzzDecodeWindowsRow decodes one windows_events row with the Sysmon and
// Security sources. Each row becomes exactly one process start, one
// connection or one counted skip. Only a connection event may produce
// nothing, because an outbound connection serves as address evidence.
func FuzzDecodeWindowsRow(f *testing.F) {
	for _, row := range recordedRows(f) {
		f.Add(row["source"], row["eventid"], row["computer_name"], row["datetime"], row["data"])
	}

	f.Fuzz(func(t *testing.T, channel, eventID, host, datetime, data string) {
		row := map[string]string{
			"time": "1600618620", "source": channel, "eventid": eventID,
			"computer_name": host, "datetime": datetime, "data": data,
		}

		for _, source := range []Source{NewSysmon(), NewSecurity()} {
			events := source.Decode([]map[string]string{row})
			requirePlausibleEvents(t, events)

			outcomes := decodeOutcomes(events)
			id, _ := strconv.Atoi(strings.TrimSpace(eventID))
			if id == sysmonNetworkConnection || id == securityWFPConnection {
				require.LessOrEqual(t, outcomes, 1, "%s: row decoded into several events", source.Name())
			} else {
				require.Equal(t, 1, outcomes, "%s: a row must become one event or one counted skip", source.Name())
			}
		}
	})
}

// FuzzParseUTCTime checks that any text either parses into a time inside
// the plausible range, at a resolution its digits give, or is rejected.
func FuzzParseUTCTime(f *testing.F) {
	for _, row := range recordedRows(f) {
		f.Add(row["datetime"])
	}

	f.Fuzz(func(t *testing.T, s string) {
		ts, err := parseUTCTime(s)
		if err != nil {
			return
		}
		require.False(t, ts.Time().Before(detect.EarliestEventTime), "time %v", ts.Time())
		require.True(t, ts.Time().Before(detect.LatestEventTime), "time %v", ts.Time())
		require.Contains(t, []time.Duration{
			time.Second, 100 * time.Millisecond, 10 * time.Millisecond, time.Millisecond,
			100 * time.Microsecond, 10 * time.Microsecond, time.Microsecond,
			100 * time.Nanosecond, 10 * time.Nanosecond, time.Nanosecond,
		}, ts.Resolution)
	})
}

// FuzzDatetimeRoundTrip checks that every datetime the loader writes reads
// back as the same instant and resolution.
func FuzzDatetimeRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, unixNano int64, subsecond bool) {
		written := time.Unix(0, unixNano).UTC()
		text := telemetry.FormatDatetime(written, subsecond)

		ts, err := parseUTCTime(text)
		if written.Before(detect.EarliestEventTime) || !written.Before(detect.LatestEventTime) {
			require.Error(t, err, text)
			return
		}
		require.NoError(t, err, text)

		want := written.Truncate(time.Second)
		resolution := time.Second
		if subsecond {
			want = written.Truncate(100 * time.Nanosecond)
			resolution = 100 * time.Nanosecond
		}
		require.Equal(t, want.UnixNano(), ts.UnixNano, text)
		require.Equal(t, resolution, ts.Resolution, text)
	})
}

// validPID is the text a process id may have: decimal digits with an
// optional sign, or 0x and hexadecimal digits, with surrounding space.
var validPID = regexp.MustCompile(`^(?:[+-]?[0-9]+|0[xX][0-9a-fA-F]+)$`)

// FuzzParsePID checks pids in decimal and hexadecimal: an accepted text has
// one of the two forms and reads back as the value written.
func FuzzParsePID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		pid, err := parsePID(s)
		if err != nil {
			require.ErrorContains(t, err, "invalid process id")
			return
		}

		trimmed := strings.TrimSpace(s)
		if trimmed == "" {
			require.Equal(t, detect.UnknownPID, pid)
			return
		}
		require.Regexp(t, validPID, trimmed)
		require.GreaterOrEqual(t, pid, detect.UnknownPID)

		if hex, ok := strings.CutPrefix(strings.ToLower(trimmed), "0x"); ok {
			want, parseErr := strconv.ParseUint(hex, 16, 63)
			require.NoError(t, parseErr)
			require.Equal(t, int64(want), pid)
			return
		}
		want, parseErr := strconv.ParseInt(trimmed, 10, 64)
		require.NoError(t, parseErr)
		if want == -1 {
			require.Equal(t, detect.UnknownPID, pid)
			return
		}
		require.Equal(t, want, pid)
	})
}

// FuzzParsePort checks that an accepted port is in 0..65535 and is the
// number written.
func FuzzParsePort(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		port, err := parsePort(s)
		if err != nil {
			return
		}
		require.True(t, port >= 0 && port <= 65535, "port %d", port)
		want, parseErr := strconv.Atoi(strings.TrimSpace(s))
		require.NoError(t, parseErr)
		require.Equal(t, want, port)
	})
}

// FuzzNormalizeAddress checks the address keys that orient connections: a
// key is a canonical address that normalizes to itself, and canonical
// addresses do not change when canonicalized again.
func FuzzNormalizeAddress(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		canonical := canonicalAddress(s)
		require.Equal(t, canonical, canonicalAddress(canonical))

		key, ok := normalizeAddress(s)
		if !ok {
			require.Empty(t, addressKey(s))
			return
		}
		addr, err := netip.ParseAddr(key)
		require.NoError(t, err, key)
		require.Equal(t, key, addr.String())
		require.False(t, addr.IsUnspecified() || addr.IsMulticast() || addr == limitedBroadcast, key)
		again, ok := normalizeAddress(key)
		require.True(t, ok)
		require.Equal(t, key, again)
	})
}
