package sqlliteral_test

import (
	"strings"
	"testing"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// BenchmarkRender measures rendering the kind of statement the sources send
// once per source and generate call: squirrel's build plus the literal
// rendering, and the rendering of a built statement alone.
func BenchmarkRender(b *testing.B) {
	query := sq.Select("time", "datetime", "source", "computer_name", "eventid", "data").
		From("windows_events").
		Where(sq.GtOrEq{"time": int64(1600617060)}).
		Where(sq.LtOrEq{"time": int64(1600620720)}).
		Where(sq.Eq{"lower(source)": "microsoft-windows-sysmon/operational"}).
		Where(sq.Eq{"eventid": []int{1, 3}}).
		OrderBy("time DESC").
		Limit(100_000)

	b.Run("squirrel-and-render", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sqlliteral.Render(query); err != nil {
				b.Fatal(err)
			}
		}
	})

	built, args, err := query.ToSql()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("inline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sqlliteral.Inline(built, args...); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Strings with quotes to double, the slow path of the quoting.
	quoted := make([]any, 16)
	for i := range quoted {
		quoted[i] = strings.Repeat(`C:\Program Files\O'Brien's "tool"\`, 4)
	}
	placeholders := "SELECT 1 WHERE x IN (" + strings.TrimSuffix(strings.Repeat("?,", len(quoted)), ",") + ")"
	b.Run("inline-quoted-strings", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sqlliteral.Inline(placeholders, quoted...); err != nil {
				b.Fatal(err)
			}
		}
	})
}
