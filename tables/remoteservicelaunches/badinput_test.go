package remoteservicelaunches_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// The launch every bad-input case starts from: services.exe on WORKSTATION6
// accepts a connection and starts cmd.exe 578 ms later, as Sysmon events 3
// and 1 write it.
const (
	badHost          = "WORKSTATION6"
	badClock         = 1600618700
	badServicesGUID  = "{d273d0f0-e865-5f64-0b00-000000000800}"
	badChildGUID     = "{d273d0f0-8078-5f67-cb06-000000000800}"
	badChildUTCTime  = "2020-09-20 16:16:56.597"
	badChildCmdline  = `cmd.exe /C start /b powershell -noP -enc SQBmACgA`
	badChildDatetime = "2020-09-20T16:16:56.5970000Z"
	badChildTime     = "1600618617"
)

// childData returns the EventData of the child's Sysmon event 1.
func childData() map[string]any {
	return map[string]any{
		"UtcTime": badChildUTCTime, "ProcessGuid": badChildGUID, "ProcessId": "9028",
		"Image": `C:\Windows\System32\cmd.exe`, "CommandLine": badChildCmdline, "User": `NT AUTHORITY\SYSTEM`,
		"ParentProcessGuid": badServicesGUID, "ParentProcessId": "704", "ParentImage": `C:\Windows\System32\services.exe`,
	}
}

// connectionRow returns the Sysmon event 3 row of the accepted connection.
func connectionRow(host string) map[string]string {
	return map[string]string{
		"time": badChildTime, "datetime": "2020-09-20T16:16:57.0000000Z", "source": sources.SysmonChannel,
		"provider_name": "Microsoft-Windows-Sysmon", "computer_name": host, "eventid": "3",
		"data": eventDataJSON(map[string]any{
			"UtcTime": "2020-09-20 16:16:56.019", "ProcessGuid": badServicesGUID, "ProcessId": "704",
			"Image": `C:\Windows\System32\services.exe`, "Protocol": "tcp", "Initiated": "false",
			"SourceIp": "172.18.39.5", "SourceHostname": "-", "SourcePort": "56608",
			"DestinationIp": "172.18.39.6", "DestinationHostname": badHost, "DestinationPort": "49726",
		}),
	}
}

// childRow returns the Sysmon event 1 row of the child with data as its
// EventData text.
func childRow(host, datetime, data string) map[string]string {
	return map[string]string{
		"time": badChildTime, "datetime": datetime, "source": sources.SysmonChannel,
		"provider_name": "Microsoft-Windows-Sysmon", "computer_name": host, "eventid": "1", "data": data,
	}
}

// eventDataJSON renders fields as windows_events.data.
func eventDataJSON(fields map[string]any) string {
	encoded, err := json.Marshal(map[string]any{"EventData": fields})
	if err != nil {
		panic(err)
	}
	return string(encoded)
}

// childWith returns the child's EventData text with one field replaced, or
// removed when value is nil.
func childWith(name string, value any) string {
	fields := childData()
	if value == nil {
		delete(fields, name)
	} else {
		fields[name] = value
	}
	return eventDataJSON(fields)
}

// skipLog collects the skip counts the table logs, by source and reason.
type skipLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *skipLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// skipped returns the counts of the "skipped malformed rows" lines, keyed
// by source and then by reason.
func (l *skipLog) skipped(t *testing.T) map[string]map[string]int {
	t.Helper()

	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()

	out := map[string]map[string]int{}
	scanner := bufio.NewScanner(strings.NewReader(text))
	for scanner.Scan() {
		var record map[string]any
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &record), scanner.Text())
		if record["msg"] != "skipped malformed rows" {
			continue
		}
		source, _ := record["source"].(string)
		counts := map[string]int{}
		for key, value := range record {
			if reason, ok := strings.CutPrefix(key, "skipped_"); ok {
				counts[reason] = int(value.(float64))
			}
		}
		out[source] = counts
	}
	require.NoError(t, scanner.Err())
	return out
}

// messages returns the log messages in order.
func (l *skipLog) messages(t *testing.T) []string {
	t.Helper()

	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()

	var out []string
	for line := range strings.Lines(text) {
		var record map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &record), line)
		out = append(out, record["msg"].(string))
	}
	return out
}

// badInputTable returns the Sysmon and Security table over q, logging JSON
// into logs, with sourceTimeout bounding each query.
func badInputTable(q osq.Querier, logs *skipLog, sourceTimeout time.Duration) *remoteservicelaunches.Table {
	return remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier:       q,
		Sources:       []sources.Source{sources.NewSysmon(), sources.NewSecurity()},
		LocalHost:     "test-host",
		SourceTimeout: sourceTimeout,
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
}

// engineWith returns an engine holding rows in windows_events, with its
// clock after them.
func engineWith(t *testing.T, rows ...map[string]string) *engine.Engine {
	t.Helper()

	e := openEmptyEngine(t)
	require.NoError(t, e.Insert(t.Context(), "windows_events", rows))
	e.SetClock(badClock)
	return e
}

// TestBadRowsThroughEngine feeds malformed windows_events rows through the
// engine and the table. Each either still yields the launch, with the
// value as the row carries it, or is skipped and counted in the log line
// of its source: never a panic and never a row lost without a count.
func TestBadRowsThroughEngine(t *testing.T) {
	t.Parallel()

	megabyteCmdline := strings.Repeat("A", 1<<20)
	quotedHost := `WS'; DROP TABLE windows_events; --`

	tests := []struct {
		name string
		host string
		// child is the child's row. The connection row is always added.
		child map[string]string
		// skipped is the Sysmon source's logged skip count by reason.
		skipped map[string]int
		// check inspects the one detection, and nil expects none.
		check func(t *testing.T, row map[string]string)
	}{
		{
			name:  "intact launch",
			child: childRow(badHost, badChildDatetime, eventDataJSON(childData())),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "9028", row["pid"])
				require.Equal(t, "578", row["delay_ms"])
				require.Equal(t, badChildCmdline, row["cmdline"])
			},
		},
		{
			name:    "missing data",
			child:   withoutColumn(childRow(badHost, badChildDatetime, ""), "data"),
			skipped: map[string]int{sources.SkipMissingField: 1},
		},
		{
			name:    "data not JSON",
			child:   childRow(badHost, badChildDatetime, `{"EventData":{"ProcessId":"9028"`),
			skipped: map[string]int{sources.SkipInvalidJSON: 1},
		},
		{
			name:    "EventData a number",
			child:   childRow(badHost, badChildDatetime, `{"EventData":5}`),
			skipped: map[string]int{sources.SkipMissingField: 1},
		},
		{
			name:  "EventData value a number",
			child: childRow(badHost, badChildDatetime, childWith("ProcessId", 9028)),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "9028", row["pid"], "encoding/json writes the number as text")
			},
		},
		{
			name:  "EventData value an array",
			child: childRow(badHost, badChildDatetime, childWith("ProcessId", []string{"9028"})),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "-1", row["pid"], "an array is no pid; ProcessGuid still links the child")
			},
		},
		{
			name:  "pid 0",
			child: childRow(badHost, badChildDatetime, childWith("ProcessId", "0")),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "0", row["pid"])
			},
		},
		{
			name:  "pid -1",
			child: childRow(badHost, badChildDatetime, childWith("ProcessId", "-1")),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "-1", row["pid"], "-1 is osquery's unknown pid")
			},
		},
		{
			name:    "pid 0x",
			child:   childRow(badHost, badChildDatetime, childWith("ProcessId", "0x")),
			skipped: map[string]int{sources.SkipBadPID: 1},
		},
		{
			name:    "pid beyond int64",
			child:   childRow(badHost, badChildDatetime, childWith("ProcessId", "99999999999999999999")),
			skipped: map[string]int{sources.SkipBadPID: 1},
		},
		{
			name:    "datetime in 1601",
			child:   childRow(badHost, "1601-01-01T00:00:00.0000000Z", childWith("UtcTime", nil)),
			skipped: map[string]int{sources.SkipAbsurdTime: 1},
		},
		{
			name:    "datetime in 9999",
			child:   childRow(badHost, "9999-12-31T23:59:59.9999999Z", childWith("UtcTime", nil)),
			skipped: map[string]int{sources.SkipAbsurdTime: 1},
		},
		{
			name:    "UtcTime in 1601 despite a good datetime",
			child:   childRow(badHost, badChildDatetime, childWith("UtcTime", "1601-01-01 00:00:00.000")),
			skipped: nil,
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "2020-09-20T16:16:56.5970000Z", row["datetime"], "falls back to the record's datetime")
			},
		},
		{
			name:  "datetime with a zone other than Z",
			child: childRow(badHost, "2020-09-20T12:16:56.5970000-04:00", childWith("UtcTime", nil)),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "2020-09-20T16:16:56.5970000Z", row["datetime"])
				require.Equal(t, "578", row["delay_ms"])
			},
		},
		{
			name:    "datetime without digits",
			child:   childRow(badHost, "yesterday at noon", childWith("UtcTime", nil)),
			skipped: map[string]int{sources.SkipUnparsableTime: 1},
		},
		{
			name:  "command line of 1 MB",
			child: childRow(badHost, badChildDatetime, childWith("CommandLine", megabyteCmdline)),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, megabyteCmdline, row["cmdline"])
			},
		},
		{
			name: "invalid UTF-8",
			child: childRow(badHost, badChildDatetime,
				strings.Replace(eventDataJSON(childData()), "/C start", "/C \xff\xfe start", 1)),
			check: func(t *testing.T, row map[string]string) {
				require.Contains(t, row["cmdline"], "/C \uFFFD\uFFFD start", "encoding/json replaces each invalid byte")
			},
		},
		{
			name:  "NUL byte",
			child: childRow(badHost, badChildDatetime, childWith("CommandLine", "cmd.exe\x00/c evil")),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, "cmd.exe\x00/c evil", row["cmdline"])
			},
		},
		{
			name:  "host name with SQL quotes",
			host:  quotedHost,
			child: childRow(quotedHost, badChildDatetime, eventDataJSON(childData())),
			check: func(t *testing.T, row map[string]string) {
				require.Equal(t, quotedHost, row["host"])
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			host := tt.host
			if host == "" {
				host = badHost
			}
			e := engineWith(t, connectionRow(host), tt.child)
			q := &recordingQuerier{next: e}
			var logs skipLog

			rows, err := badInputTable(q, &logs, time.Minute).Generate(t.Context(), table.QueryContext{})
			require.NoError(t, err)

			if tt.check == nil {
				require.Empty(t, rows, rowJSON(rows))
			} else {
				require.Len(t, rows, 1, rowJSON(rows))
				tt.check(t, rows[0])
			}

			skipped := logs.skipped(t)
			if tt.skipped == nil {
				require.NotContains(t, skipped, "sysmon")
			} else {
				require.Equal(t, tt.skipped, skipped["sysmon"])
			}

			// No value of a row ever reaches a sub-query.
			for _, sql := range q.sent() {
				require.NotContains(t, sql, "DROP", sql)
				require.NotContains(t, sql, "9028", sql)
			}
		})
	}
}

// withoutColumn returns row without column.
func withoutColumn(row map[string]string, column string) map[string]string {
	out := maps.Clone(row)
	delete(out, column)
	return out
}

// TestInjectedTimeConstraint checks that a string constraint on time that
// holds SQL reaches no sub-query and selects what SQLite selects: nothing
// for >=, because SQLite orders every integer before every string.
func TestInjectedTimeConstraint(t *testing.T) {
	t.Parallel()

	e := engineWith(t, connectionRow(badHost), childRow(badHost, badChildDatetime, eventDataJSON(childData())))
	q := &recordingQuerier{next: e}
	var logs skipLog
	attach(t, e, badInputTable(q, &logs, time.Minute))

	rows, err := e.QueryRows(t.Context(), "SELECT * FROM remote_service_launches WHERE time >= '1 OR 1=1'")
	require.NoError(t, err)
	require.Empty(t, rows, rowJSON(rows))

	rows, err = e.QueryRows(t.Context(), "SELECT * FROM remote_service_launches WHERE time < '1 OR 1=1'")
	require.NoError(t, err)
	require.Len(t, rows, 1, "SQLite orders the integer time before the string")

	sent := q.sent()
	require.NotEmpty(t, sent)
	for _, sql := range sent {
		require.NotContains(t, sql, "OR 1=1", sql)
	}
	require.Contains(t, logs.messages(t), "ignoring time constraints")

	stored, err := e.QueryRows(t.Context(), "SELECT count(*) AS n FROM windows_events")
	require.NoError(t, err)
	require.Equal(t, "2", stored[0]["n"])
}

// querierFunc is an osq.Querier made of a function.
type querierFunc func(ctx context.Context, sql string) ([]map[string]string, error)

func (f querierFunc) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	return f(ctx, sql)
}

// TestBadOsqueryResponses runs the table over Queriers that stand for a
// misbehaving osquery: an error status for one source, no rows, rows
// without columns, or no response at all.
func TestBadOsqueryResponses(t *testing.T) {
	t.Parallel()

	// The Sysmon query names its channel, the Security query does not.
	isSysmon := func(sql string) bool { return strings.Contains(sql, "sysmon") }
	rowsOf := func(t *testing.T) []map[string]string {
		return []map[string]string{connectionRow(badHost), childRow(badHost, badChildDatetime, eventDataJSON(childData()))}
	}

	tests := []struct {
		name    string
		querier func(t *testing.T) osq.Querier
		// wantErr is a text the error must contain, and "" expects no
		// error.
		wantErr string
		// wantRows is the number of detections.
		wantRows int
		// skipped is the Sysmon source's logged skip count by reason.
		skipped map[string]int
		// logged is a message the log must contain.
		logged string
	}{
		{
			name: "status 1 for one source",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
					if isSysmon(sql) {
						return nil, errors.New("query returned error: no such table: windows_events")
					}
					return nil, nil
				})
			},
			logged: "reading source failed",
		},
		{
			name: "status 1 for every source",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
					return nil, errors.New("query returned error: no such table: windows_events")
				})
			},
			wantErr: "no such table: windows_events",
			logged:  "reading source failed",
		},
		{
			name: "no rows",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(context.Context, string) ([]map[string]string, error) {
					return []map[string]string{}, nil
				})
			},
			logged: "using the wall clock",
		},
		{
			name: "launch rows",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
					if isSysmon(sql) {
						return rowsOf(t), nil
					}
					return nil, nil
				})
			},
			wantRows: 1,
		},
		{
			name: "rows missing computer_name",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
					if !isSysmon(sql) {
						return nil, nil
					}
					var rows []map[string]string
					for _, row := range rowsOf(t) {
						rows = append(rows, withoutColumn(row, "computer_name"))
					}
					return rows, nil
				})
			},
			skipped: map[string]int{sources.SkipMissingField: 2},
		},
		{
			name: "rows without any column",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
					if isSysmon(sql) {
						return []map[string]string{{}, {}, {}}, nil
					}
					return nil, nil
				})
			},
			skipped: map[string]int{sources.SkipUnexpectedEvent: 3},
		},
		{
			name: "time table without unix_time",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(_ context.Context, sql string) ([]map[string]string, error) {
					if strings.Contains(sql, "unix_time") {
						return []map[string]string{{"other": "1"}}, nil
					}
					return nil, nil
				})
			},
			logged: "using the wall clock",
		},
		{
			name: "no response at all",
			querier: func(t *testing.T) osq.Querier {
				return querierFunc(func(ctx context.Context, _ string) ([]map[string]string, error) {
					<-ctx.Done()
					return nil, ctx.Err()
				})
			},
			wantErr: context.DeadlineExceeded.Error(),
			logged:  "reading source failed",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var logs skipLog
			rows, err := badInputTable(tt.querier(t), &logs, 200*time.Millisecond).Generate(t.Context(), table.QueryContext{})
			if tt.wantErr != "" {
				require.Error(t, err)
				require.ErrorContains(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				require.Len(t, rows, tt.wantRows, rowJSON(rows))
			}

			skipped := logs.skipped(t)
			if tt.skipped == nil {
				require.NotContains(t, skipped, "sysmon")
			} else {
				require.Equal(t, tt.skipped, skipped["sysmon"])
			}
			if tt.logged != "" {
				require.Contains(t, logs.messages(t), tt.logged)
			}
		})
	}
}
