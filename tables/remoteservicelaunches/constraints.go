package remoteservicelaunches

import (
	"math"
	"strconv"
	"strings"

	"github.com/osquery/osquery-go/plugin/table"
)

// timeRange is the range of child start times, in Unix seconds, that a
// query's `time` constraints allow. Both ends are inclusive.
type timeRange struct {
	lower, upper       int64
	hasLower, hasUpper bool
}

// empty reports whether no time satisfies the constraints.
func (r timeRange) empty() bool {
	return r.hasLower && r.hasUpper && r.lower > r.upper
}

// contains reports whether a child start second lies in the range.
func (r timeRange) contains(second int64) bool {
	return (!r.hasLower || second >= r.lower) && (!r.hasUpper || second <= r.upper)
}

func (r *timeRange) raiseLower(v int64) {
	if !r.hasLower || v > r.lower {
		r.lower, r.hasLower = v, true
	}
}

func (r *timeRange) cutUpper(v int64) {
	if !r.hasUpper || v < r.upper {
		r.upper, r.hasUpper = v, true
	}
}

// timeConstraints reads the `time` constraints osquery passes: `>= X` sets
// the lower bound X, `> X` X+1, `= X` both bounds, `<` and `<=` the upper
// bound. Constraints combine with AND: the column is not OPTIMIZED, so
// osquery sends an IN list one value per generate call, never as several
// equality constraints in one context. Other operators and expressions that
// are not numbers are ignored, which is safe because SQLite filters the
// returned rows again. It returns the expressions it ignored.
func timeConstraints(qc table.QueryContext) (timeRange, []string) {
	var r timeRange
	var ignored []string

	list, ok := qc.Constraints["time"]
	if !ok {
		return r, nil
	}

	for _, c := range list.Constraints {
		value, err := strconv.ParseFloat(strings.TrimSpace(c.Expression), 64)
		if err != nil || math.IsNaN(value) || math.IsInf(value, 0) || math.Abs(value) > 1e15 {
			ignored = append(ignored, c.Expression)
			continue
		}

		// Child start seconds are integers: round each bound inward.
		switch c.Operator {
		case table.OperatorGreaterThanOrEquals:
			r.raiseLower(int64(math.Ceil(value)))
		case table.OperatorGreaterThan:
			r.raiseLower(int64(math.Floor(value)) + 1)
		case table.OperatorEquals:
			r.raiseLower(int64(math.Ceil(value)))
			r.cutUpper(int64(math.Floor(value)))
		case table.OperatorLessThanOrEquals:
			r.cutUpper(int64(math.Floor(value)))
		case table.OperatorLessThan:
			r.cutUpper(int64(math.Ceil(value)) - 1)
		default:
			ignored = append(ignored, c.Expression)
		}
	}
	return r, ignored
}
