package remoteservicelaunches

import (
	"testing"
	"time"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
)

func TestTimeConstraints(t *testing.T) {
	t.Parallel()

	type constraint struct {
		op   table.Operator
		expr string
	}
	tests := []struct {
		name        string
		constraints []constraint
		want        timeRange
		ignored     []string
	}{
		{name: "none", want: timeRange{}},
		{name: "at least", constraints: []constraint{{table.OperatorGreaterThanOrEquals, "100"}}, want: timeRange{lower: 100, hasLower: true}},
		{name: "greater", constraints: []constraint{{table.OperatorGreaterThan, "100"}}, want: timeRange{lower: 101, hasLower: true}},
		{name: "equal", constraints: []constraint{{table.OperatorEquals, "100"}}, want: timeRange{lower: 100, upper: 100, hasLower: true, hasUpper: true}},
		{name: "at most", constraints: []constraint{{table.OperatorLessThanOrEquals, "100"}}, want: timeRange{upper: 100, hasUpper: true}},
		{name: "less", constraints: []constraint{{table.OperatorLessThan, "100"}}, want: timeRange{upper: 99, hasUpper: true}},
		{name: "fractions widen by a second", constraints: []constraint{
			{table.OperatorGreaterThanOrEquals, "99.5"}, {table.OperatorLessThan, "200.5"},
		}, want: timeRange{lower: 99, upper: 201, hasLower: true, hasUpper: true}},
		{name: "tightest bounds win", constraints: []constraint{
			{table.OperatorGreaterThan, "50"}, {table.OperatorGreaterThanOrEquals, "100"}, {table.OperatorLessThan, "300"}, {table.OperatorLessThanOrEquals, "200"},
		}, want: timeRange{lower: 100, upper: 200, hasLower: true, hasUpper: true}},
		{name: "text and unknown operators ignored", constraints: []constraint{
			{table.OperatorGreaterThanOrEquals, "yesterday"}, {table.OperatorLike, "1%"}, {table.OperatorGreaterThanOrEquals, "7"},
		}, want: timeRange{lower: 7, hasLower: true}, ignored: []string{"yesterday", "1%"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			qc := table.QueryContext{Constraints: map[string]table.ConstraintList{}}
			if len(tt.constraints) > 0 {
				list := table.ConstraintList{Affinity: table.ColumnTypeBigInt}
				for _, c := range tt.constraints {
					list.Constraints = append(list.Constraints, table.Constraint{Operator: c.op, Expression: c.expr})
				}
				qc.Constraints["time"] = list
			}

			got, ignored := timeConstraints(qc)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.ignored, ignored)
		})
	}
}

func TestFormatTimestamp(t *testing.T) {
	t.Parallel()

	instant := time.Date(2020, 9, 20, 16, 16, 56, 597_123_400, time.UTC).UnixNano()
	tests := []struct {
		resolution time.Duration
		want       string
	}{
		{resolution: detect.ResolutionFiletime, want: "2020-09-20T16:16:56.5971234Z"},
		{resolution: time.Microsecond, want: "2020-09-20T16:16:56.597123Z"},
		{resolution: detect.ResolutionMillisecond, want: "2020-09-20T16:16:56.597Z"},
		{resolution: detect.ResolutionSecond, want: "2020-09-20T16:16:56Z"},
		{resolution: time.Nanosecond, want: "2020-09-20T16:16:56.597123400Z"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, formatTimestamp(detect.Timestamp{UnixNano: instant, Resolution: tt.resolution}))
	}
}

func TestUnixSecondsBeforeEpoch(t *testing.T) {
	t.Parallel()

	require.Equal(t, int64(-1), unixSeconds(detect.Timestamp{UnixNano: -1}))
	require.Equal(t, int64(0), unixSeconds(detect.Timestamp{UnixNano: 999_999_999}))
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()

	tbl := New(Config{Options: detect.Options{ClockTolerance: 2 * time.Second}})
	require.Equal(t, DefaultLookback, tbl.cfg.Lookback)
	require.Equal(t, DefaultReceiveSlack, tbl.cfg.ReceiveSlack)
	require.Equal(t, DefaultSourceTimeout, tbl.cfg.SourceTimeout)
	require.Equal(t, DefaultMaxRowsPerSource, tbl.cfg.MaxRowsPerSource)
	require.Equal(t, time.Second, tbl.cfg.Options.Window)
	require.Equal(t, []string{"services.exe"}, tbl.cfg.Options.ParentNames)
	require.Equal(t, 2*time.Second, tbl.cfg.Options.ClockTolerance, "set fields are kept")
	require.NotEmpty(t, tbl.cfg.Sources)
}

func TestQueryBoundsWithTolerance(t *testing.T) {
	t.Parallel()

	tbl := New(Config{
		Options:          detect.Options{Window: 1500 * time.Millisecond, ClockTolerance: 2 * time.Second},
		ReceiveSlack:     30 * time.Second,
		MaxRowsPerSource: -1,
	})
	bounds, err := tbl.queryBounds(t.Context(), timeRange{lower: 1000, upper: 2000, hasLower: true, hasUpper: true})
	require.NoError(t, err)
	// 1.5 s window + 2 s tolerance + 30 s slack = 33.5 s, rounded up.
	require.Equal(t, int64(1000-34), bounds.Lower)
	require.Equal(t, int64(2000+30), bounds.Upper)
	require.Equal(t, 0, bounds.MaxRows, "a negative cap means none")
}

func TestQueryBoundsNotNegative(t *testing.T) {
	t.Parallel()

	tbl := New(Config{})
	bounds, err := tbl.queryBounds(t.Context(), timeRange{lower: 5, hasLower: true})
	require.NoError(t, err)
	require.Equal(t, int64(0), bounds.Lower)
}
