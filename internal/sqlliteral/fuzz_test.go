package sqlliteral_test

import (
	"database/sql"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	sq "github.com/Masterminds/squirrel"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// The fuzz targets below check the renderer against SQLite itself: a
// rendered statement must return exactly the rows that the same statement
// returns with its arguments bound as parameters, or Render must reject the
// value. The seeds are the files under testdata/fuzz/<target>; every `go test`
// runs them. Run one for longer with, for example:
//
//	go test ./internal/sqlliteral -run '^$' -fuzz '^FuzzRenderString$' -fuzztime 3m -parallel 1

// fuzzColumns are the columns of the fuzz table, one per SQLite type
// affinity, because affinity changes how a literal compares.
var fuzzColumns = []string{"vt", "vi", "vr", "vn", "vb"}

// fixedValues are stored beside the fuzzed value, so that a query that
// matches too much or too little returns other ids.
var fixedValues = []any{
	nil, int64(0), int64(-1), int64(1), int64(math.MaxInt64), int64(math.MinInt64),
	0.0, math.Copysign(0, -1), 1.5, -1.5, 1e300, 5e-324,
	"", " ", "a", "A", "it's", "1", "-1", "1.5", "%", "_", "a%", "?", "x'00'",
	[]byte{}, []byte{0}, []byte("a"),
}

// openFuzzDB returns a single-connection in-memory database with table t.
func openFuzzDB(tb testing.TB) *sql.DB {
	tb.Helper()

	db, err := sql.Open("sqlite", ":memory:")
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, db.Close()) })

	// One connection keeps the single in-memory database for every query.
	db.SetMaxOpenConns(1)
	_, err = db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, vt TEXT, vi INTEGER, vr REAL, vn NUMERIC, vb BLOB)")
	require.NoError(tb, err)
	return db
}

// resetRows fills t with the fixed values and value, each value in every
// column.
func resetRows(t *testing.T, db *sql.DB, value any) {
	t.Helper()

	_, err := db.Exec("DELETE FROM t")
	require.NoError(t, err)
	for i, v := range append([]any{value}, fixedValues...) {
		_, err := db.Exec("INSERT INTO t (id, vt, vi, vr, vn, vb) VALUES (?, ?, ?, ?, ?, ?)", i, v, v, v, v, v)
		require.NoError(t, err)
	}
}

// queryResult runs a statement and returns its rows as text, or the error.
func queryResult(db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()

	columns, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	values := make([]any, len(columns))
	pointers := make([]any, len(columns))
	for i := range values {
		pointers[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(pointers...); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%#v", values))
	}
	return out, rows.Err()
}

// valueQueries returns squirrel queries that compare every column with
// value under every operator that the sources use or could use.
func valueQueries(value any) []sq.SelectBuilder {
	var queries []sq.SelectBuilder
	for _, column := range fuzzColumns {
		base := sq.Select("id").From("t").OrderBy("id")
		queries = append(queries,
			base.Where(sq.Eq{column: value}),
			base.Where(sq.NotEq{column: value}),
			base.Where(sq.Lt{column: value}),
			base.Where(sq.LtOrEq{column: value}),
			base.Where(sq.Gt{column: value}),
			base.Where(sq.GtOrEq{column: value}),
			base.Where(sq.Eq{column: []any{value, "a", int64(1)}}),
			base.Where(sq.Expr("lower("+column+") = lower(?)", value)),
		)
		if s, ok := value.(string); ok {
			queries = append(queries,
				base.Where(sq.Like{column: s}),
				base.Where(sq.NotLike{column: s}),
			)
		}
	}
	queries = append(queries, sq.Select("typeof(v)", "quote(v)", "v = v").
		FromSelect(sq.Select().Column(sq.Expr("? AS v", value)), "s"))
	return queries
}

// requireRenderMatchesBound runs every value query rendered and with bound
// parameters, and requires both to return the same rows. It returns false
// when Render rejected the value.
func requireRenderMatchesBound(t *testing.T, db *sql.DB, value any) bool {
	t.Helper()

	resetRows(t, db, value)
	for _, query := range valueQueries(value) {
		rendered, err := sqlliteral.Render(query)
		if err != nil {
			return false
		}

		boundSQL, args, err := query.ToSql()
		require.NoError(t, err)
		want, err := queryResult(db, boundSQL, args...)
		require.NoError(t, err, "bound: %s %#v", boundSQL, args)

		got, err := queryResult(db, rendered)
		require.NoError(t, err, "rendered: %s", rendered)
		require.Equal(t, want, got, "rendered: %s\nbound: %s %#v", rendered, boundSQL, args)
	}
	return true
}

func FuzzRenderString(f *testing.F) {
	for _, value := range hostileValues {
		f.Add(value)
	}
	db := openFuzzDB(f)

	f.Fuzz(func(t *testing.T, value string) {
		if !requireRenderMatchesBound(t, db, value) {
			_, err := sqlliteral.Literal(value)
			require.Error(t, err)
			require.True(t, strings.ContainsRune(value, 0) || !utf8.ValidString(value), "rejected %q", value)
		}
	})
}

func FuzzRenderInt(f *testing.F) {
	db := openFuzzDB(f)

	f.Fuzz(func(t *testing.T, value int64) {
		require.True(t, requireRenderMatchesBound(t, db, value), "every int64 has a literal")
	})
}

func FuzzRenderFloat(f *testing.F) {
	db := openFuzzDB(f)

	f.Fuzz(func(t *testing.T, value float64) {
		if !requireRenderMatchesBound(t, db, value) {
			require.True(t, math.IsNaN(value) || math.IsInf(value, 0), "rejected %v", value)
		}
	})
}

func FuzzRenderBytes(f *testing.F) {
	db := openFuzzDB(f)

	f.Fuzz(func(t *testing.T, value []byte) {
		require.True(t, requireRenderMatchesBound(t, db, value), "every []byte has a literal")
	})
}

// FuzzInline renders arbitrary SELECT text with one string argument. When
// SQLite runs the text with the argument bound, the rendered statement must
// return the same rows: the placeholder scanner must find exactly the
// placeholders SQLite finds, whatever quotes and comments surround them.
func FuzzInline(f *testing.F) {
	db := openFuzzDB(f)
	resetRowsOnce := false

	f.Fuzz(func(t *testing.T, query, arg string) {
		if !resetRowsOnce {
			resetRows(t, db, "seed")
			resetRowsOnce = true
		}

		rendered, err := sqlliteral.Inline(query, arg)
		if err != nil {
			return
		}

		// Only single SELECT statements: they change nothing, so both runs
		// see the same table.
		trimmed := strings.ToUpper(strings.TrimSpace(query))
		if !strings.HasPrefix(trimmed, "SELECT") || strings.Contains(query, ";") {
			return
		}

		want, err := queryResult(db, query, arg)
		if err != nil {
			return
		}
		again, err := queryResult(db, query, arg)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(want) {
			return // random() and similar functions
		}

		got, err := queryResult(db, rendered)
		require.NoError(t, err, "rendered: %s\nbound: %s with %q", rendered, query, arg)
		require.Equal(t, want, got, "rendered: %s\nbound: %s with %q", rendered, query, arg)
	})
}
