package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
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
