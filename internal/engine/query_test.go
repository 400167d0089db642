package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/osqueryschema"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
		want []string
	}{
		{"single", "SELECT 1", []string{"SELECT 1"}},
		{"trailing semicolon", "SELECT 1;  ", []string{"SELECT 1"}},
		{"two", "SELECT 1; SELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"empty", " ; -- only a comment\n ; /* block */", nil},
		{"quoted semicolons", `SELECT 'a;b', "c;d", [e;f], ` + "`g;h`" + ` FROM t; SELECT 'it''s;'`,
			[]string{`SELECT 'a;b', "c;d", [e;f], ` + "`g;h`" + ` FROM t`, `SELECT 'it''s;'`}},
		{"comments", "SELECT 1 -- x;\n; /* ; */ SELECT 2", []string{"SELECT 1 -- x;", "/* ; */ SELECT 2"}},
		{"trigger", "CREATE TEMP TRIGGER tr AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END; SELECT 3",
			[]string{"CREATE TEMP TRIGGER tr AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END", "SELECT 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, splitStatements(tt.sql))
		})
	}
}

func TestQueryRowsSeveralStatements(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})

	rows, err := e.QueryRows(context.Background(), "CREATE TEMP TABLE x(a); INSERT INTO x VALUES (1), (2); SELECT a FROM x; SELECT 'b' AS b")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"a": "1"}, {"a": "2"}, {"b": "b"}}, rows)

	rows, err = e.QueryRows(context.Background(), "  ")
	require.NoError(t, err)
	require.Empty(t, rows)
}

func TestQueryColumnsOrder(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	tests := []struct {
		name    string
		sql     string
		columns []string
		rows    []map[string]string
	}{
		{"select list", "SELECT 2 AS b, 1 AS a, 3 AS c", []string{"b", "a", "c"}, []map[string]string{{"b": "2", "a": "1", "c": "3"}}},
		{"no rows", "SELECT 1 AS z, 2 AS y WHERE 0", []string{"z", "y"}, []map[string]string{}},
		{"repeated name", "SELECT 1 AS a, 2 AS b, 3 AS a", []string{"a", "b"}, []map[string]string{{"a": "3", "b": "2"}}},
		{"several statements", "CREATE TEMP TABLE x(q, p); SELECT 1 AS b; SELECT 2 AS a, 3 AS b; SELECT * FROM x",
			[]string{"b", "a", "q", "p"}, []map[string]string{{"b": "1"}, {"a": "2", "b": "3"}}},
		{"empty", " ; ", []string{}, []map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			columns, rows, err := e.QueryColumns(ctx, tt.sql)
			require.NoError(t, err)
			require.Equal(t, tt.columns, columns)
			require.Equal(t, tt.rows, rows)
		})
	}
}

// SELECT * lists a table's columns in their declared order: a stored
// osquery table's schema order, and an attached table's visible columns.
func TestQueryColumnsSelectStar(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	ctx := context.Background()

	columns, rows, err := e.QueryColumns(ctx, "SELECT * FROM osquery_info")
	require.NoError(t, err)
	require.Empty(t, rows)
	schema, ok := osqueryschema.Lookup("osquery_info")
	require.True(t, ok)
	var declared []string
	for _, c := range schema.Columns {
		declared = append(declared, c.Name)
	}
	require.Equal(t, declared, columns)

	require.NoError(t, e.AttachTable("launches", []Column{
		{Name: "time", Type: "BIGINT", Options: 4},
		{Name: "eid", Type: "TEXT", Options: 16},
		{Name: "pid", Type: "BIGINT"},
		{Name: "host", Type: "TEXT"},
	}, func(context.Context, string) ([]map[string]string, error) {
		return []map[string]string{{"time": "1", "eid": "e", "pid": "2", "host": "h"}}, nil
	}))
	columns, rows, err = e.QueryColumns(ctx, "SELECT * FROM launches")
	require.NoError(t, err)
	require.Equal(t, []string{"time", "pid", "host"}, columns, "visible columns in declared order")
	require.Equal(t, []map[string]string{{"time": "1", "pid": "2", "host": "h"}}, rows)
}

func TestQueryColumnsError(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})

	columns, rows, err := e.QueryColumns(context.Background(), "SELECT 1 AS a; SELECT * FROM nope")
	var queryErr *QueryError
	require.ErrorAs(t, err, &queryErr)
	require.Equal(t, "no such table: nope", queryErr.Message)
	require.Nil(t, columns)
	require.Nil(t, rows)
}

func TestQueryErrorMessage(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})
	require.NoError(t, e.AttachTable("needs_pid", []Column{{Name: "pid", Type: "BIGINT", Options: 2}},
		func(context.Context, string) ([]map[string]string, error) { return nil, nil }))

	tests := []struct {
		name string
		sql  string
		want string
	}{
		{"syntax error", "SELEC 1", `near "SELEC": syntax error`},
		{"missing table", "SELECT * FROM nope", "no such table: nope"},
		{"required column", "SELECT * FROM needs_pid", "Table needs_pid was queried without a required column in the WHERE clause"},
		{"second statement", "SELECT 1; SELECT * FROM nope", "no such table: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.QueryRows(context.Background(), tt.sql)
			var queryErr *QueryError
			require.True(t, errors.As(err, &queryErr), "error %v is not a *QueryError", err)
			require.Equal(t, tt.want, queryErr.Message)
			require.Equal(t, "running query: "+tt.want, err.Error())
		})
	}
}

func TestVersionCollations(t *testing.T) {
	t.Parallel()
	e := openEngine(t, Options{})

	// Cases from osquery's osquery/sql/tests/sql.cpp; each must be true.
	comparisons := []string{
		"'1.0' = '1.0' COLLATE version",
		"'1:0.0' = '1.0.0' COLLATE version",
		"'2.50^1a' = '2.50~1a' COLLATE version",
		"'1.1' < '1.a' COLLATE version",
		"'50.4.1b' < '50.4.1c' COLLATE version",
		"'1.0.0' < '1.0.0-2' COLLATE version",
		"'1.0.0-2' < '1:0.0.3' COLLATE version",
		"'1.12.1' < '1.13' COLLATE version",
		"'190.10a' > '20.10a' COLLATE version",
		"'20.10a' > '20.102' COLLATE version",
		"'57:4' > '6.87.5' COLLATE version",
		"'8.11' > '8.10.24' COLLATE version",
		"'1.0' = '1.0-4' COLLATE version_arch",
		"'4:2' = '4:2-1' COLLATE version_arch",
		"'1.6.1-9' < '1.6.1-10' COLLATE version_arch",
		"'2-2pre' < '2-2rc' COLLATE version_arch",
		"'41.1-2' < '43alpha+r8+g1de47dbc-1' COLLATE version_arch",
		"'1:1.2.13-2' > '4.2.1' COLLATE version_arch",
		"'1:2.0-10' = '1:2.0-10' COLLATE version_dpkg",
		"'1.9.9-1ubuntu2.4' > '1.9.9-1ubuntu2.3' COLLATE version_dpkg",
		"'1.0.0~rc2^2021' < '1.0.0' COLLATE version_rhel",
		"'1.1.0~BETA2^1' < '1.1.0~CR1' COLLATE version_rhel",
		"'1.0.1.1' > '1.0.1^2021' COLLATE version_rhel",
	}
	for _, comparison := range comparisons {
		rows, err := e.QueryRows(context.Background(), "SELECT "+comparison+" AS ok")
		require.NoError(t, err, comparison)
		require.Equal(t, "1", rows[0]["ok"], comparison)
	}

	// osquery_info.version is declared COLLATE VERSION.
	require.NoError(t, e.Insert(context.Background(), "osquery_info", []map[string]string{{"version": "5.10.2"}, {"version": "5.9.1"}}))
	rows, err := e.QueryRows(context.Background(), "SELECT version FROM osquery_info ORDER BY version")
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"version": "5.9.1"}, {"version": "5.10.2"}}, rows)
}
