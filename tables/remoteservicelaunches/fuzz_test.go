package remoteservicelaunches_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// The fuzz targets below run their seeds, the files under
// testdata/fuzz/<target>, in every `go test`. Run one for longer with, for
// example:
//
//	go test ./tables/remoteservicelaunches -run '^$' -fuzz '^FuzzTimeConstraints$' -fuzztime 3m -parallel 1

// syntheticChildSeconds are the start times of the children in the
// synthetic engine, each one second after its own inbound connection. They
// include neighbouring seconds, so that an off-by-one bound loses a row.
var syntheticChildSeconds = []int64{1600000000, 1600000001, 1600000002, 1600000003, 1600000010, 1600000100, 1600003000}

// syntheticClock is the engine's unix_time: every child lies within the
// default lookback before it, so a query without a lower bound reads them
// all.
const syntheticClock = 1600003500

// openSyntheticEngine returns an engine with one sshd launch per
// syntheticChildSeconds in process_events and socket_events.
func openSyntheticEngine(tb testing.TB) *engine.Engine {
	tb.Helper()

	e, err := engine.Open(context.Background(), engine.Options{Dir: tb.TempDir()})
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, e.Close()) })

	var accepts, children []map[string]string
	for i, second := range syntheticChildSeconds {
		accepts = append(accepts, map[string]string{
			"action": "accept", "pid": "812", "path": "/usr/sbin/sshd", "family": "2", "protocol": "6",
			"local_address": "10.0.0.5", "local_port": "22",
			"remote_address": "10.0.0.9", "remote_port": strconv.Itoa(50000 + i),
			"time": strconv.FormatInt(second-1, 10),
		})
		children = append(children, map[string]string{
			"pid": strconv.Itoa(4000 + i), "parent": "812", "path": "/bin/sh", "cmdline": "sh -c id",
			"time": strconv.FormatInt(second, 10),
		})
	}
	require.NoError(tb, e.Insert(context.Background(), "socket_events", accepts))
	require.NoError(tb, e.Insert(context.Background(), "process_events", children))
	e.SetClock(syntheticClock)
	return e
}

// syntheticTable returns the table over the Unix sources of the synthetic
// engine, with sshd as the parent.
func syntheticTable(e *engine.Engine) *remoteservicelaunches.Table {
	return remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier: e,
		Options: detect.Options{ParentNames: []string{"sshd"}},
		Sources: sources.Unix("web01"),
	})
}

// FuzzPluginCall sends the table plugin generate requests with arbitrary
// query-context JSON, as osqueryd's Thrift call would deliver it. The
// plugin must return rows or an error status, never panic.
func FuzzPluginCall(f *testing.F) {
	e := openSyntheticEngine(f)
	plugin := syntheticTable(e).Plugin()

	f.Fuzz(func(t *testing.T, contextJSON string) {
		response := plugin.Call(t.Context(), osquery.ExtensionPluginRequest{"action": "generate", "context": contextJSON})

		require.NotNil(t, response.Status)
		if response.Status.Code != 0 {
			require.Equal(t, int32(1), response.Status.Code)
			require.NotEmpty(t, response.Status.Message)
			return
		}
		for _, row := range response.Response {
			second, err := strconv.ParseInt(row["time"], 10, 64)
			require.NoError(t, err)
			require.Contains(t, syntheticChildSeconds, second)
		}
	})
}

// constraintOperators are the SQL comparisons FuzzTimeConstraints puts on
// time, indexed by its operator arguments.
var constraintOperators = []string{"=", ">", ">=", "<", "<=", "<>", "IS", "IS NOT"}

// constraintValue returns the literal of one fuzzed constraint value: an
// integer, a float or a string, as a query author might write it. ok is
// false when the value has no literal.
func constraintValue(kind uint8, text string, number float64, integer int64) (string, bool) {
	var value any
	switch kind % 3 {
	case 0:
		value = integer
	case 1:
		value = number
	default:
		value = text
	}
	literal, err := sqlliteral.Literal(value)
	return literal, err == nil
}

// FuzzTimeConstraints compares the table with SQLite on up to two time
// constraints: the rows a query on remote_service_launches returns must be
// exactly the rows the same WHERE clause selects from a plain table of the
// detections' times. Generate may read more than the constraints allow,
// because SQLite filters its rows again, but it must never leave one out.
func FuzzTimeConstraints(f *testing.F) {
	e := openSyntheticEngine(f)
	attachTB(f, e, syntheticTable(e))

	plain, err := sql.Open("sqlite", ":memory:")
	require.NoError(f, err)
	f.Cleanup(func() { require.NoError(f, plain.Close()) })
	plain.SetMaxOpenConns(1)
	_, err = plain.Exec("CREATE TABLE launches (time BIGINT)")
	require.NoError(f, err)
	for _, second := range syntheticChildSeconds {
		_, err = plain.Exec("INSERT INTO launches (time) VALUES (?)", second)
		require.NoError(f, err)
	}

	f.Fuzz(func(t *testing.T, op1, kind1 uint8, text1 string, number1 float64, integer1 int64,
		op2, kind2 uint8, text2 string, number2 float64, integer2 int64) {
		literal1, ok1 := constraintValue(kind1, text1, number1, integer1)
		literal2, ok2 := constraintValue(kind2, text2, number2, integer2)
		if !ok1 || !ok2 {
			return
		}
		where := "time " + constraintOperators[int(op1)%len(constraintOperators)] + " " + literal1
		// The high bit of op2 adds a second constraint.
		if op2&0x80 != 0 {
			where += " AND time " + constraintOperators[int(op2&0x7f)%len(constraintOperators)] + " " + literal2
		}

		want := plainTimes(t, plain, where)

		rows, err := e.QueryRows(t.Context(), "SELECT time FROM remote_service_launches WHERE "+where)
		require.NoError(t, err, where)
		var got []int64
		for _, row := range rows {
			second, err := strconv.ParseInt(row["time"], 10, 64)
			require.NoError(t, err)
			got = append(got, second)
		}
		slices.Sort(got)
		require.Equal(t, want, got, "WHERE %s", where)
	})
}

// plainTimes returns the sorted times of the plain table that where selects.
func plainTimes(t *testing.T, db *sql.DB, where string) []int64 {
	t.Helper()

	rows, err := db.Query("SELECT time FROM launches WHERE " + where + " ORDER BY time")
	require.NoError(t, err, where)
	defer rows.Close()

	var out []int64
	for rows.Next() {
		var second int64
		require.NoError(t, rows.Scan(&second))
		out = append(out, second)
	}
	require.NoError(t, rows.Err())
	return out
}

// attachTB is attach for fuzz targets, whose *testing.F is no *testing.T.
func attachTB(tb testing.TB, e *engine.Engine, tbl *remoteservicelaunches.Table) {
	tb.Helper()

	plugin := tbl.Plugin()
	var columns []engine.Column
	for _, c := range remoteservicelaunches.Columns() {
		columns = append(columns, engine.Column{Name: c.Name, Type: string(c.Type), Options: int(c.Options())})
	}
	generate := func(ctx context.Context, queryContextJSON string) ([]map[string]string, error) {
		response := plugin.Call(ctx, osquery.ExtensionPluginRequest{"action": "generate", "context": queryContextJSON})
		if response.Status.Code != 0 {
			return nil, errors.New(response.Status.Message)
		}
		return response.Response, nil
	}
	require.NoError(tb, e.AttachTable(plugin.Name(), columns, generate))
}
