package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	e, err := Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

func TestOpenCreatesOsqueryTables(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})

	for _, table := range []string{
		"windows_events", "process_etw_events", "process_events", "socket_events", "processes",
		"osquery_registry", "osquery_extensions", "osquery_events", "osquery_flags", "osquery_info", "time",
	} {
		rows, err := e.QueryRows(context.Background(), "SELECT count(*) AS n FROM "+table)
		require.NoError(t, err, table)
		require.Len(t, rows, 1, table)
	}
}

func TestCloseRemovesDirectory(t *testing.T) {
	t.Parallel()
	e, err := Open(context.Background(), Options{Dir: t.TempDir()})
	require.NoError(t, err)
	_, err = os.Stat(e.dir)
	require.NoError(t, err)

	require.NoError(t, e.Close())
	_, err = os.Stat(e.dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "directory %s still exists", e.dir)
	require.NoError(t, e.Close(), "second Close")
}

func TestInsertQueryRoundTrip(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	err := e.Insert(ctx, "windows_events", []map[string]string{
		{
			"time": "1600618616", "datetime": "2020-09-20T16:16:56.5970000Z", "source": "Security",
			"provider_name": "Microsoft-Windows-Security-Auditing", "eventid": "4688",
			"data": `{"EventData":{"NewProcessId":"0x294"}}`, "eid": "abc",
		},
		{"time": "", "eventid": "not a number", "level": "0x4", "task": "010"},
	})
	require.NoError(t, err)

	rows, err := e.QueryRows(ctx, "SELECT time, datetime, source, eventid, level, task, keywords, data, eid, typeof(time) AS t FROM windows_events ORDER BY rowid")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{
		{
			"time": "1600618616", "datetime": "2020-09-20T16:16:56.5970000Z", "source": "Security",
			"eventid": "4688", "level": "", "task": "", "keywords": "",
			"data": `{"EventData":{"NewProcessId":"0x294"}}`, "eid": "abc", "t": "integer",
		},
		// osquery parses integers with base 0: 0x4 is 4 and 010 is octal 8.
		{
			"time": "", "datetime": "", "source": "", "eventid": "", "level": "4", "task": "8",
			"keywords": "", "data": "", "eid": "", "t": "null",
		},
	}, rows)
}

func TestInsertErrors(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	tests := []struct {
		name  string
		table string
		rows  []map[string]string
		want  string
	}{
		{name: "unknown table", table: "no_such_table", rows: []map[string]string{{}}, want: `unknown table "no_such_table"`},
		{name: "unknown column", table: "windows_events", rows: []map[string]string{{"time": "1"}, {"nope": "1"}}, want: `row 2 of windows_events: unknown column "nope"`},
		{name: "alias column", table: "process_events", rows: []map[string]string{{"environment": "A=B"}}, want: `column "environment" is an alias of "env"`},
		{name: "time table", table: "time", rows: []map[string]string{{"unix_time": "1"}}, want: "use SetClock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.Insert(ctx, tt.table, tt.rows)
			require.ErrorContains(t, err, tt.want)
		})
	}

	rows, err := e.QueryRows(ctx, "SELECT count(*) AS n FROM windows_events")
	require.NoError(t, err)
	require.Equal(t, "0", rows[0]["n"], "a rejected insert stores nothing")
}

func TestQueryRowsFormatsValues(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})

	rows, err := e.QueryRows(context.Background(), `SELECT NULL AS n, 42 AS i, -7 AS neg, 3.0 AS whole, 0.1 AS tenth,
		1e20 AS big, 2.5e-7 AS small, 'text' AS s, x'616263' AS b, 1.0/3 AS third`)
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{
		"n": "", "i": "42", "neg": "-7", "whole": "3.0", "tenth": "0.1",
		"big": "1e+20.0", "small": "2.5e-07", "s": "text", "b": "abc", "third": "0.333333333333333",
	}}, rows)
}

func TestTimeTableFollowsClock(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	e.SetClock(1600618616)
	rows, err := e.QueryRows(ctx, "SELECT unix_time FROM time")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"unix_time": "1600618616"}}, rows)

	rows, err = e.QueryRows(ctx, "SELECT * FROM time")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{
		"weekday": "Sunday", "year": "2020", "month": "9", "day": "20", "hour": "16", "minutes": "16",
		"seconds": "56", "timezone": "UTC", "local_timezone": "UTC", "unix_time": "1600618616",
		"timestamp": "Sun Sep 20 16:16:56 2020 UTC", "datetime": "2020-09-20T16:16:56Z",
		"iso_8601": "2020-09-20T16:16:56Z", "win_timestamp": "132450922160000000",
	}}, rows)

	rows, err = e.QueryRows(ctx, "SELECT date_time FROM time")
	require.NoError(t, err)
	require.Equal(t, "2020-09-20T16:16:56Z", rows[0]["date_time"], "column alias")

	e.SetClock(1600618617)
	rows, err = e.QueryRows(ctx, "SELECT unix_time - 60 AS since FROM time")
	require.NoError(t, err)
	require.Equal(t, "1600618557", rows[0]["since"])
}

// recordContexts attaches a table and returns the context JSON of every
// generate call.
func recordContexts(t *testing.T, e *Engine, name string, columns []Column, rows []map[string]string) *[]string {
	t.Helper()
	var mu sync.Mutex
	var contexts []string
	err := e.AttachTable(name, columns, func(_ context.Context, queryContext string) ([]map[string]string, error) {
		mu.Lock()
		defer mu.Unlock()
		contexts = append(contexts, queryContext)
		return rows, nil
	})
	require.NoError(t, err)
	return &contexts
}

func TestAttachTableConstraintJSON(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})

	columns := []Column{
		{Name: "time", Type: "BIGINT", Options: 4},
		{Name: "host", Type: "TEXT", Options: 4},
		{Name: "pid", Type: "BIGINT", Options: 16},
	}
	contexts := recordContexts(t, e, "remote_launches", columns, []map[string]string{
		{"time": "10", "host": "a", "pid": "1"},
	})

	list := func(host, pid, timeList string) string {
		return `{"constraints":[{"name":"host","list":[` + host + `],"affinity":"TEXT"},` +
			`{"name":"pid","list":[` + pid + `],"affinity":"BIGINT"},` +
			`{"name":"time","list":[` + timeList + `],"affinity":"BIGINT"}],`
	}
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"time greater or equal", "SELECT time FROM remote_launches WHERE time >= 5",
			list("", "", `{"op":32,"expr":"5"}`) + `"colsUsed":["time"],"colsUsedBitset":1}`},
		{"time greater", "SELECT time FROM remote_launches WHERE time > 5",
			list("", "", `{"op":4,"expr":"5"}`) + `"colsUsed":["time"],"colsUsedBitset":1}`},
		{"time equal", "SELECT time FROM remote_launches WHERE time = 5",
			list("", "", `{"op":2,"expr":"5"}`) + `"colsUsed":["time"],"colsUsedBitset":1}`},
		{"time less", "SELECT time FROM remote_launches WHERE time < 5",
			list("", "", `{"op":16,"expr":"5"}`) + `"colsUsed":["time"],"colsUsedBitset":1}`},
		{"real expression", "SELECT time FROM remote_launches WHERE time >= 5.0",
			list("", "", `{"op":32,"expr":"5.0"}`) + `"colsUsed":["time"],"colsUsedBitset":1}`},
		{"text equal", "SELECT host FROM remote_launches WHERE host = 'a'",
			list(`{"op":2,"expr":"a"}`, "", "") + `"colsUsed":["host"],"colsUsedBitset":2}`},
		{"text range dropped", "SELECT host FROM remote_launches WHERE host > 'a'",
			list("", "", "") + `"colsUsed":["host"],"colsUsedBitset":2}`},
		{"text like", "SELECT host FROM remote_launches WHERE host LIKE 'a%'",
			list(`{"op":65,"expr":"a%"}`, "", "") + `"colsUsed":["host"],"colsUsedBitset":2}`},
		{"hidden column without index", "SELECT pid FROM remote_launches WHERE pid = 1",
			list("", "", "") + `"colsUsed":["pid"],"colsUsedBitset":4}`},
		{"no constraint", "SELECT * FROM remote_launches",
			list("", "", "") + `"colsUsed":["time","host"],"colsUsedBitset":3}`},
		{"two constraints", "SELECT time FROM remote_launches WHERE time >= 5 AND time < 9 AND host = 'b'",
			list(`{"op":2,"expr":"b"}`, "", `{"op":32,"expr":"5"},{"op":16,"expr":"9"}`) + `"colsUsed":["time","host"],"colsUsedBitset":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			*contexts = nil
			_, err := e.QueryRows(context.Background(), tt.query)
			require.NoError(t, err)
			require.Len(t, *contexts, 1)
			require.JSONEq(t, tt.want, (*contexts)[0])
			require.Equal(t, tt.want, (*contexts)[0], "byte-exact JSON")
		})
	}
}

func TestAttachTableDefaultIndex(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		disable bool
		want    string
	}{
		{"default index on", false, `{"op":2,"expr":"7"}`},
		{"default index off", true, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := openEngine(t, Options{DisableExtensionsDefaultIndex: tt.disable})
			contexts := recordContexts(t, e, "plain", []Column{{Name: "pid", Type: "BIGINT"}}, nil)

			_, err := e.QueryRows(context.Background(), "SELECT pid FROM plain WHERE pid = 7")
			require.NoError(t, err)
			require.Len(t, *contexts, 1)
			require.Equal(t, `{"constraints":[{"name":"pid","list":[`+tt.want+`],"affinity":"BIGINT"}],"colsUsed":["pid"],"colsUsedBitset":1}`, (*contexts)[0])
		})
	}
}

func TestAttachTableRequiredColumn(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	contexts := recordContexts(t, e, "needs_path", []Column{
		{Name: "path", Type: "TEXT", Options: 2},
		{Name: "size", Type: "BIGINT"},
	}, []map[string]string{{"path": "/a", "size": "3"}})

	_, err := e.QueryRows(context.Background(), "SELECT * FROM needs_path")
	require.ErrorContains(t, err, "Table needs_path was queried without a required column in the WHERE clause")
	require.Empty(t, *contexts, "generate must not run")

	rows, err := e.QueryRows(context.Background(), "SELECT size FROM needs_path WHERE path = '/a'")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"size": "3"}}, rows)
}

func TestAttachTableConvertsValues(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	recordContexts(t, e, "typed", []Column{
		{Name: "i", Type: "INTEGER", Options: 4},
		{Name: "b", Type: "BIGINT", Options: 4},
		{Name: "d", Type: "DOUBLE", Options: 4},
		{Name: "s", Type: "TEXT", Options: 4},
	}, []map[string]string{
		{"i": "12", "b": "0x10", "d": "2.5", "s": "x"},
		{"i": "", "b": "abc", "d": "2.5x", "s": ""},
		{"i": "5000000000", "b": " -3", "d": " 1e3"},
	})

	rows, err := e.QueryRows(context.Background(), "SELECT i, typeof(i) AS ti, b, d, typeof(d) AS td, s, typeof(s) AS ts FROM typed")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{
		{"i": "12", "ti": "integer", "b": "16", "d": "2.5", "td": "real", "s": "x", "ts": "text"},
		{"i": "", "ti": "null", "b": "", "d": "", "td": "null", "s": "", "ts": "text"},
		{"i": "", "ti": "null", "b": "-3", "d": "1000.0", "td": "real", "s": "", "ts": "null"},
	}, rows)

	// SQLite applies the WHERE clause to the returned rows again.
	rows, err = e.QueryRows(context.Background(), "SELECT b FROM typed WHERE b > 0")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"b": "16"}}, rows)
}

func TestGenerateRunsNestedQuery(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	require.NoError(t, e.Insert(ctx, "process_etw_events", []map[string]string{
		{"type": "ProcessStart", "pid": "100", "time": "10"},
		{"type": "ProcessStart", "pid": "200", "time": "20"},
		{"type": "ProcessStart", "pid": "300", "time": "30"},
	}))
	e.SetClock(25)

	// The generate function queries the engine for every outer row while
	// the outer statement over the same engine is still stepping.
	err := e.AttachTable("starts", []Column{{Name: "pid", Type: "BIGINT"}, {Name: "now", Type: "BIGINT"}},
		func(ctx context.Context, _ string) ([]map[string]string, error) {
			now, err := e.QueryRows(ctx, "SELECT unix_time FROM time")
			if err != nil {
				return nil, err
			}
			rows, err := e.QueryRows(ctx, fmt.Sprintf("SELECT pid FROM process_etw_events WHERE time <= %s ORDER BY pid", now[0]["unix_time"]))
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				r["now"] = now[0]["unix_time"]
			}
			return rows, nil
		})
	require.NoError(t, err)

	rows, err := e.QueryRows(ctx, `SELECT p.pid AS outer_pid, s.pid, s.now FROM process_etw_events p
		JOIN starts s ON s.pid = p.pid ORDER BY p.pid`)
	require.NoError(t, err)
	require.Equal(t, []map[string]string{
		{"outer_pid": "100", "pid": "100", "now": "25"},
		{"outer_pid": "200", "pid": "200", "now": "25"},
	}, rows)
}

func TestQueryRowsConcurrent(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{IndexTime: true})
	ctx := context.Background()

	var rows []map[string]string
	for i := range 200 {
		rows = append(rows, map[string]string{"time": fmt.Sprint(i), "eventid": "5156"})
	}
	require.NoError(t, e.Insert(ctx, "windows_events", rows))
	recordContexts(t, e, "echo", []Column{{Name: "n", Type: "INTEGER"}}, []map[string]string{{"n": "1"}})

	const workers = 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if w%2 == 0 {
					if err := e.Insert(ctx, "windows_events", []map[string]string{{"time": "1000", "eventid": fmt.Sprint(w*100 + i)}}); err != nil {
						errs <- err
						return
					}
				}
				got, err := e.QueryRows(ctx, "SELECT count(*) AS n FROM windows_events WHERE time < 200")
				if err != nil {
					errs <- err
					return
				}
				if got[0]["n"] != "200" {
					errs <- fmt.Errorf("worker %d: count %s, expected 200", w, got[0]["n"])
					return
				}
				if _, err := e.QueryRows(ctx, "SELECT n FROM echo, time"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	got, err := e.QueryRows(ctx, "SELECT count(*) AS n FROM windows_events")
	require.NoError(t, err)
	require.Equal(t, "280", got[0]["n"])
}

func TestGenerateErrorReachesQuery(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	require.NoError(t, e.AttachTable("failing", []Column{{Name: "x", Type: "TEXT"}},
		func(context.Context, string) ([]map[string]string, error) {
			return nil, errors.New("error generating table: source offline")
		}))

	_, err := e.QueryRows(context.Background(), "SELECT * FROM failing")
	require.ErrorContains(t, err, "error generating table: source offline")
}

func TestAttachTableRejectsInvalid(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	generate := func(context.Context, string) ([]map[string]string, error) { return nil, nil }

	tests := []struct {
		name    string
		table   string
		columns []Column
		want    string
	}{
		{"osquery table", "processes", []Column{{Name: "x", Type: "TEXT"}}, "an osquery table has this name"},
		{"bad name", "a-b", []Column{{Name: "x", Type: "TEXT"}}, "invalid table name"},
		{"bad type", "t1", []Column{{Name: "x", Type: "STRING"}}, `unknown type "STRING"`},
		{"repeated column", "t2", []Column{{Name: "x", Type: "TEXT"}, {Name: "x", Type: "TEXT"}}, "empty or repeated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, e.AttachTable(tt.table, tt.columns, generate), tt.want)
		})
	}

	require.NoError(t, e.AttachTable("t3", []Column{{Name: "x", Type: "TEXT"}}, generate))
	require.ErrorContains(t, e.AttachTable("t3", []Column{{Name: "x", Type: "TEXT"}}, generate), "already exists")
}

func TestQueryContextJSONEscaping(t *testing.T) {
	t.Parallel()
	lists := map[string]*constraintList{
		"b": {affinity: "TEXT", items: []constraintItem{{op: 2, expr: "a\"b\\c\n\x01é</>"}}},
		"a": {affinity: "INTEGER"},
	}
	got := queryContextJSON(lists, []string{"b"}, 2)
	require.Equal(t, `{"constraints":[{"name":"a","list":[],"affinity":"INTEGER"},{"name":"b","list":[{"op":2,"expr":"a\"b\\c\n\u0001é</>"}],"affinity":"TEXT"}],"colsUsed":["b"],"colsUsedBitset":2}`, got)
	require.True(t, json.Valid([]byte(got)))
}

func TestIndexTimeOption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		index bool
		want  []map[string]string
	}{
		{"without index", false, []map[string]string{}},
		{"with index", true, []map[string]string{
			{"name": "process_etw_events_time"}, {"name": "process_events_time"},
			{"name": "socket_events_time"}, {"name": "windows_events_time"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := openEngine(t, Options{IndexTime: tt.index})
			rows, err := e.QueryRows(context.Background(), "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
			require.NoError(t, err)
			require.Equal(t, tt.want, rows)
		})
	}
}

func TestAttachTableDeclaresHidden(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	recordContexts(t, e, "declared", []Column{
		{Name: "time", Type: "BIGINT", Options: 4},
		{Name: "eid", Type: "TEXT", Options: 16},
	}, nil)

	rows, err := e.QueryRows(context.Background(), "SELECT name, type, hidden FROM pragma_table_xinfo('declared')")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{
		{"name": "time", "type": "BIGINT", "hidden": "0"},
		{"name": "eid", "type": "TEXT", "hidden": "1"},
	}, rows)
}

func TestGenerateQueriesAttachedTable(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	inner := recordContexts(t, e, "inner_table", []Column{{Name: "v", Type: "TEXT", Options: 4}},
		[]map[string]string{{"v": "a"}, {"v": "b"}})
	require.NoError(t, e.AttachTable("outer_table", []Column{{Name: "v", Type: "TEXT"}},
		func(ctx context.Context, _ string) ([]map[string]string, error) {
			return e.QueryRows(ctx, "SELECT v FROM inner_table WHERE v = 'b'")
		}))

	rows, err := e.QueryRows(ctx, "SELECT o.v FROM outer_table o, time")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"v": "b"}}, rows)
	require.Equal(t, []string{`{"constraints":[{"name":"v","list":[{"op":2,"expr":"b"}],"affinity":"TEXT"}],"colsUsed":["v"],"colsUsedBitset":1}`}, *inner)
}
