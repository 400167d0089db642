package engine

import (
	"fmt"
	"strings"

	"modernc.org/sqlite"
)

// versionCollations are osquery's version collating sequences and the
// comparison flags each passes to versionCompare
// (osquery/sql/sqlite_version.cpp).
var versionCollations = []struct {
	name  string
	flags versionFlags
}{
	{"VERSION", versionFlags{}},
	{"VERSION_ARCH", versionFlags{epoch: true, compareRemaining: true, remainderPrecedence: true}},
	{"VERSION_DPKG", versionFlags{epoch: true, delimiterPrecedence: true}},
	{"VERSION_RHEL", versionFlags{epoch: true, delimiterPrecedence: true, compareRemaining: true}},
}

// registerVersionCollations makes osquery's version collations available
// to every connection the driver opens afterwards, because columns such as
// osquery_info.version are declared with them.
func registerVersionCollations() error {
	for _, c := range versionCollations {
		flags := c.flags
		compare := func(left, right string) int { return versionCompare(left, right, flags) }
		if err := sqlite.RegisterCollationUtf8(c.name, compare); err != nil {
			return fmt.Errorf("registering the SQLite collation %s: %w", c.name, err)
		}
	}
	return nil
}

// versionFlags are the options of osquery's versionCompare.
type versionFlags struct {
	epoch               bool // compare the position of an "epoch:" prefix first
	delimiterPrecedence bool // order delimiters ~ < - < ^ < . < :
	compareRemaining    bool // let the first extra character decide (~ lower, ^ higher)
	remainderPrecedence bool // with compareRemaining, a digit before the end defers to length
}

// delimiterRank returns the precedence of a version delimiter, 0 for other
// characters.
func delimiterRank(c byte) int {
	switch c {
	case '~':
		return 1
	case '-':
		return 2
	case '^':
		return 3
	case '.':
		return 4
	case ':':
		return 5
	}
	return 0
}

// versionCompare is a port of osquery's versionCompare. Segments between
// delimiters compare by their first differing character, a segment that
// goes on where the other reached a delimiter is greater, and when one
// version is a prefix of the other the remainder decides.
func versionCompare(left, right string, flags versionFlags) int {
	switch {
	case left == "" && right == "":
		return 0
	case left == "":
		return -1
	case right == "":
		return 1
	case left == right:
		return 0
	}

	if flags.epoch {
		if diff := compareEpoch(left, right); diff != 0 {
			return diff
		}
	}

	firstDiff := 0
	shorter := min(len(left), len(right))
	for i := 0; i < shorter; i++ {
		leftRank := delimiterRank(left[i])
		rightRank := delimiterRank(right[i])
		switch {
		case leftRank == 0 && rightRank == 0:
			if firstDiff == 0 {
				// osquery subtracts C chars, which are signed on its
				// platforms, so bytes from 0x80 count as negative.
				firstDiff = int(int8(left[i])) - int(int8(right[i]))
			}
			continue
		case leftRank == 0:
			return 1
		case rightRank == 0:
			return -1
		}

		if firstDiff != 0 {
			return firstDiff
		}
		if flags.delimiterPrecedence && leftRank != rightRank {
			return leftRank - rightRank
		}
	}

	if len(left) == len(right) {
		return firstDiff
	}
	return compareRemainder(left, right, shorter, firstDiff, flags)
}

// compareEpoch compares the positions of the first ':' in both versions; a
// version with an epoch sorts after one without.
func compareEpoch(left, right string) int {
	leftEpoch := strings.IndexByte(left, ':')
	rightEpoch := strings.IndexByte(right, ':')
	switch {
	case leftEpoch >= 0 && rightEpoch >= 0:
		return leftEpoch - rightEpoch
	case leftEpoch >= 0:
		return 1
	case rightEpoch >= 0:
		return -1
	}
	return 0
}

// compareRemainder decides between a version and a longer one that starts
// the same, as osquery's compareRemainder does.
func compareRemainder(left, right string, pos, diff int, flags versionFlags) int {
	if len(left) == pos {
		if flags.compareRemaining {
			switch right[pos] {
			case '~':
				return 1
			case '-':
				return 0
			case '^':
				return -1
			default:
				if diff != 0 && (!flags.remainderPrecedence || !isDigit(left[pos-1])) {
					return diff
				}
			}
		} else if diff != 0 && delimiterRank(right[pos]) > 0 {
			return diff
		}
	}
	if len(right) == pos {
		if flags.compareRemaining {
			switch left[pos] {
			case '~':
				return -1
			case '-':
				return 0
			case '^':
				return 1
			default:
				if diff != 0 && (!flags.remainderPrecedence || !isDigit(right[pos-1])) {
					return diff
				}
			}
		} else if diff != 0 && delimiterRank(left[pos]) > 0 {
			return diff
		}
	}
	return len(left) - len(right)
}

func isDigit(c byte) bool {
	return c >= '0' && c <= '9'
}
