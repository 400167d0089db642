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
// equality constraints in one context. Other operators, and expressions
// that SQLite might not read as the same number (see parseConstraint), are
// ignored, which is safe because SQLite filters the returned rows again. It
// returns the expressions it ignored.
func timeConstraints(qc table.QueryContext) (timeRange, []string) {
	var r timeRange
	var ignored []string

	list, ok := qc.Constraints["time"]
	if !ok {
		return r, nil
	}

	for _, c := range list.Constraints {
		lowest, highest, ok := parseConstraint(c.Expression)
		if !ok {
			ignored = append(ignored, c.Expression)
			continue
		}

		// Child start seconds are integers: round each bound inward, from
		// the end of the value's range that keeps every row.
		switch c.Operator {
		case table.OperatorGreaterThanOrEquals:
			r.raiseLower(int64(math.Ceil(lowest)))
		case table.OperatorGreaterThan:
			r.raiseLower(int64(math.Floor(lowest)) + 1)
		case table.OperatorEquals:
			r.raiseLower(int64(math.Ceil(lowest)))
			r.cutUpper(int64(math.Floor(highest)))
		case table.OperatorLessThanOrEquals:
			r.cutUpper(int64(math.Floor(highest)))
		case table.OperatorLessThan:
			r.cutUpper(int64(math.Ceil(highest)) - 1)
		default:
			ignored = append(ignored, c.Expression)
		}
	}
	return r, ignored
}

// Limits of the constraint values that timeConstraints uses. Integers are
// exact up to maxIntegerConstraint. Other numbers reach the table as text
// that osquery formats with 15 significant digits (sqlite3_value_text of a
// REAL), which for values below maxRealConstraint is off by less than
// realSlack.
const (
	maxIntegerConstraint = 1e15
	maxRealConstraint    = 1e12
	realSlack            = 1.0
)

// parseConstraint reads a constraint expression as SQLite reads text as a
// number when it compares it with the INTEGER column: decimal digits with an
// optional sign, fraction and exponent, between ASCII spaces. It returns the
// range the compared value can lie in: one point for an integer, and the
// value widened by realSlack for any other number, which covers osquery's
// rounding. ok is false for text SQLite does not read as a number, such as
// '1 OR 1=1', and for text Go would read differently: hexadecimal, "Inf",
// underscores or Unicode spaces.
func parseConstraint(expr string) (lowest, highest float64, ok bool) {
	text := strings.Trim(expr, " \t\n\v\f\r")
	integral, ok := decimalSyntax(text)
	if !ok {
		return 0, 0, false
	}
	value, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, 0, false
	}

	if integral {
		if math.Abs(value) > maxIntegerConstraint {
			return 0, 0, false
		}
		return value, value, true
	}
	if math.Abs(value) >= maxRealConstraint {
		return 0, 0, false
	}
	return value - realSlack, value + realSlack, true
}

// decimalSyntax reports whether text is a decimal number as SQL writes one,
// [+-]digits[.digits][(e|E)[+-]digits] with digits on at least one side of
// the point, and whether it is an integer (digits only).
func decimalSyntax(text string) (integral, ok bool) {
	i := 0
	if i < len(text) && (text[i] == '+' || text[i] == '-') {
		i++
	}
	digits := countDigits(text[i:])
	i += digits
	integral = true
	if i < len(text) && text[i] == '.' {
		integral = false
		i++
		fraction := countDigits(text[i:])
		i += fraction
		digits += fraction
	}
	if digits == 0 {
		return false, false
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		integral = false
		i++
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			i++
		}
		exponent := countDigits(text[i:])
		if exponent == 0 {
			return false, false
		}
		i += exponent
	}
	return integral, i == len(text)
}

func countDigits(text string) int {
	n := 0
	for n < len(text) && text[n] >= '0' && text[n] <= '9' {
		n++
	}
	return n
}
