package sqlliteral_test

import (
	"database/sql"
	"errors"
	"math"
	"testing"

	sq "github.com/Masterminds/squirrel"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

type channel string

func TestRenderGolden(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		query sq.Sqlizer
		want  string
	}{
		{
			name: "windows events with bounds",
			query: sq.Select("time", "data").From("windows_events").
				Where(sq.Eq{"lower(source)": "security"}).
				Where(sq.Eq{"eventid": []int{4688, 5156}}).
				Where(sq.GtOrEq{"time": int64(1600618616)}).
				Where(sq.LtOrEq{"time": int64(1600618676)}),
			want: "SELECT time, data FROM windows_events WHERE lower(source) = 'security' AND eventid IN (4688,5156) AND time >= 1600618616 AND time <= 1600618676",
		},
		{
			name:  "quote doubled",
			query: sq.Select("pid").From("process_events").Where(sq.Eq{"path": `C:\it's "here"`}),
			want:  `SELECT pid FROM process_events WHERE path = 'C:\it''s "here"'`,
		},
		{
			name:  "bool nil and float",
			query: sq.Expr("SELECT ?, ?, ?, ?, ?", true, false, nil, 1.5, 2.0),
			want:  "SELECT 1, 0, NULL, 1.5, 2.0",
		},
		{
			name:  "negative numbers cannot form a comment",
			query: sq.Expr("SELECT 1-?, 2-?", -5, -0.5),
			want:  "SELECT 1-(-5), 2-(-0.5)",
		},
		{
			name:  "named string type and pointer",
			query: sq.Expr("SELECT ?, ?, ?", channel("Security"), ptr(int64(7)), (*string)(nil)),
			want:  "SELECT 'Security', 7, NULL",
		},
		{
			name:  "blob",
			query: sq.Expr("SELECT ?", []byte{0x00, 0xff, 'a'}),
			want:  "SELECT X'00FF61'",
		},
		{
			name:  "placeholder inside quotes is text",
			query: sq.Expr(`SELECT '?', "a?b", [c?], `+"`d?`"+`, ? -- ?`+"\n"+`/* ? */ , ?`, 1, 2),
			want:  `SELECT '?', "a?b", [c?], ` + "`d?`" + `, 1 -- ?` + "\n" + `/* ? */ , 2`,
		},
		{
			name:  "escaped quote inside quoted text",
			query: sq.Expr(`SELECT 'it''s ?', ?`, "x"),
			want:  `SELECT 'it''s ?', 'x'`,
		},
		{
			name:  "double question mark is a literal question mark",
			query: sq.Expr("SELECT ??, ?", 3),
			want:  "SELECT ?, 3",
		},
		{
			name:  "literal kept apart from neighbouring words",
			query: sq.Expr("SELECT X?, ?a", "41", 5),
			want:  "SELECT X '41', 5 a",
		},
		{
			name:  "literal kept apart from neighbouring quotes",
			query: sq.Expr(`SELECT?'', ''?, "a"?, ?[b]`, "0", "1", 2, 3),
			want:  `SELECT '0' '', '' '1', "a" 2, 3 [b]`,
		},
		{
			name:  "literal kept apart from a decimal point",
			query: sq.Expr("SELECT 1.?, ?.5", 5, 1),
			want:  "SELECT 1. 5, 1 .5",
		},
		{
			name:  "allowed identifier argument",
			query: sq.Expr("SELECT ? FROM ?", sqlliteral.Identifier("unix_time"), sqlliteral.Identifier("time")),
			want:  "SELECT unix_time FROM time",
		},
		{
			name:  "unicode and newline stay as they are",
			query: sq.Expr("SELECT ?", "ünï\ncödé ✓"),
			want:  "SELECT 'ünï\ncödé ✓'",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := sqlliteral.Render(tt.query)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRenderRejects(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		query   sq.Sqlizer
		message string
	}{
		{name: "NUL byte", query: sq.Expr("SELECT ?", "a\x00b"), message: "NUL byte"},
		{name: "invalid UTF-8", query: sq.Expr("SELECT ?", "a\xffb"), message: "not valid UTF-8"},
		{name: "NaN", query: sq.Expr("SELECT ?", math.NaN()), message: "no SQLite literal"},
		{name: "infinity", query: sq.Expr("SELECT ?", math.Inf(1)), message: "no SQLite literal"},
		{name: "huge unsigned", query: sq.Expr("SELECT ?", uint64(math.MaxUint64)), message: "larger than"},
		{name: "unsupported type", query: sq.Expr("SELECT ?", struct{}{}), message: "unsupported argument type"},
		{name: "too few arguments", query: sq.Expr("SELECT ?, ?", 1), message: "more placeholders than the 1 arguments"},
		{name: "too many arguments", query: sq.Expr("SELECT ?", 1, 2), message: "1 placeholders for 2 arguments"},
		{name: "numbered parameter", query: sq.Expr("SELECT ?1", 1), message: "numbered parameters"},
		{name: "named parameter", query: sq.Expr("SELECT :name"), message: "named parameter"},
		{name: "unterminated string", query: sq.Expr("SELECT 'abc"), message: "unterminated '"},
		{name: "identifier not allowed", query: sq.Expr("SELECT ?", sqlliteral.Identifier("sqlite_master")), message: "allow-list"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := sqlliteral.Render(tt.query)
			require.Error(t, err)
			require.ErrorContains(t, err, tt.message)
		})
	}
}

func TestIdent(t *testing.T) {
	t.Parallel()

	got, err := sqlliteral.Idents("time", "datetime", "windows_events")
	require.NoError(t, err)
	require.Equal(t, []string{"time", "datetime", "windows_events"}, got)

	_, err = sqlliteral.Ident("time; DROP TABLE x")
	require.True(t, errors.Is(err, sqlliteral.ErrNotAllowed))
}

// hostileValues are string values that would break naive quoting. Each is
// stored in a real SQLite table and must select exactly its own row.
var hostileValues = []string{
	"plain",
	"it's",
	"''",
	"' OR 1=1 --",
	"' OR '1'='1",
	"'; DROP TABLE t; --",
	`back\slash\`,
	`\'`,
	"line\nbreak\r\n",
	"?",
	"? OR 1=1",
	"'?'",
	"/* ? */",
	"-- ?",
	`"double"`,
	"ünïcödé ✓ 日本語 🙂",
	"",
	" ",
	"%",
	"_",
}

func TestRenderHostileValuesInSQLite(t *testing.T) {
	t.Parallel()

	db, err := sql.Open("sqlite", ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	// One connection keeps the single in-memory database for every query.
	db.SetMaxOpenConns(1)

	_, err = db.ExecContext(t.Context(), "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	require.NoError(t, err)
	for i, value := range hostileValues {
		_, err = db.ExecContext(t.Context(), "INSERT INTO t (id, v) VALUES (?, ?)", i, value)
		require.NoError(t, err)
	}

	for i, value := range hostileValues {
		t.Run(value, func(t *testing.T) {
			query, err := sqlliteral.Render(sq.Select("id").From("t").Where(sq.Eq{"v": value}).OrderBy("id"))
			require.NoError(t, err)

			rows, err := db.QueryContext(t.Context(), query)
			require.NoError(t, err, "rendered: %s", query)
			defer rows.Close()

			var ids []int
			for rows.Next() {
				var id int
				require.NoError(t, rows.Scan(&id))
				ids = append(ids, id)
			}
			require.NoError(t, rows.Err())
			require.Equal(t, []int{i}, ids, "rendered: %s", query)
		})
	}
}

func TestRenderIntegersInSQLite(t *testing.T) {
	t.Parallel()

	db, err := sql.Open("sqlite", ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	values := []any{int64(math.MinInt64), int64(math.MaxInt64), -1, 0, uint32(math.MaxUint32)}
	for _, value := range values {
		query, err := sqlliteral.Render(sq.Expr("SELECT 0-?, typeof(?)", value, value))
		require.NoError(t, err)

		var negated, kind string
		require.NoError(t, db.QueryRowContext(t.Context(), query).Scan(&negated, &kind), "rendered: %s", query)
		require.Equal(t, "integer", kind, "rendered: %s", query)
	}
}

func ptr[T any](v T) *T {
	return &v
}
