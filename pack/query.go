// Package pack holds svclaunch's osquery queries and writes them as an
// osquery JSON pack and as Fleet YAML.
//
// Each query is one file under queries/: a header of "-- key: value" comment
// lines followed by the SQL. Those files are the only definition of the
// queries. RunCommand generates the pack files beside this package from them,
// and the tests fail when a checked-in pack file differs.
package pack

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// Logging is a Fleet logging mode. Each maps to osquery's snapshot and
// removed options.
type Logging string

// The logging modes Fleet accepts for a query.
const (
	// LoggingSnapshot logs every row on every run (osquery snapshot: true).
	LoggingSnapshot Logging = "snapshot"
	// LoggingDifferential logs rows added and removed since the previous run
	// (osquery snapshot: false, removed: true).
	LoggingDifferential Logging = "differential"
	// LoggingDifferentialIgnoreRemovals logs only rows added since the
	// previous run (osquery snapshot: false, removed: false).
	LoggingDifferentialIgnoreRemovals Logging = "differential_ignore_removals"
)

// Snapshot reports whether osquery logs every row on every run.
func (l Logging) Snapshot() bool {
	return l == LoggingSnapshot
}

// Removed reports whether osquery logs rows that left the result.
func (l Logging) Removed() bool {
	return l == LoggingDifferential
}

// Query is one query of the pack, parsed from its file under queries/.
type Query struct {
	// Name identifies the query in the osquery pack, in Fleet and in results
	// logs.
	Name string
	// Description is the behaviour the query looks for.
	Description string
	// Value is the meaning of one result row.
	Value string
	// Response is the action to take on a result.
	Response string
	// Notes explain the interval, logging and limits.
	Notes string
	// Platforms lists the platforms the query runs on, in the words osquery
	// and Fleet share: windows, linux, darwin.
	Platforms []string
	// Interval is the schedule interval in seconds. Zero marks an ad hoc
	// query that is never scheduled.
	Interval int
	// Logging is the Fleet logging mode.
	Logging Logging
	// MinOsqueryVersion is the oldest osquery release the query works on.
	MinOsqueryVersion string
	// Denylist is osquery's denylist option: whether the watchdog may stop
	// scheduling the query after it made the worker exceed its limits.
	Denylist bool
	// SQL is the statement without the header and without a final
	// semicolon.
	SQL string
	// File is the file name under queries/.
	File string
}

// Scheduled reports whether the query belongs on a schedule.
func (q Query) Scheduled() bool {
	return q.Interval > 0
}

// Platform returns the platforms as a comma list, the form osquery and Fleet
// read.
func (q Query) Platform() string {
	return strings.Join(q.Platforms, ",")
}

// Limits osquery applies to scheduled queries (osquery/config/packs.cpp).
const (
	// MaxInterval is the largest schedule interval osquery accepts, 7 days.
	MaxInterval = 604800
)

// reservedNamePrefixes are the query name prefixes osquery reserves for its
// own database keys; a pack query named like this is skipped with a warning.
var reservedNamePrefixes = []string{"query.", "cache.", "config_views."}

// reservedNameSuffixes are the suffixes osquery reserves for the same reason.
var reservedNameSuffixes = []string{"epoch", "counter"}

// knownPlatforms are the platform names both osquery and Fleet accept.
var knownPlatforms = []string{"windows", "linux", "darwin"}

var (
	headerLine  = regexp.MustCompile(`^-- ([a-z_]+): (.*)$`)
	versionForm = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	nameForm    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Queries returns every query of the pack, sorted by name.
func Queries() ([]Query, error) {
	entries, err := fs.ReadDir(queryFiles, "queries")
	if err != nil {
		return nil, fmt.Errorf("listing the embedded query files: %w", err)
	}

	var queries []Query
	seen := make(map[string]string)
	for _, entry := range entries {
		data, err := fs.ReadFile(queryFiles, path.Join("queries", entry.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading query file %s: %w", entry.Name(), err)
		}

		q, err := ParseQuery(entry.Name(), string(data))
		if err != nil {
			return nil, err
		}
		if other, ok := seen[q.Name]; ok {
			return nil, fmt.Errorf("query files %s and %s both use the name %q; give each query its own name", other, q.File, q.Name)
		}
		seen[q.Name] = q.File
		queries = append(queries, q)
	}

	slices.SortFunc(queries, func(a, b Query) int { return strings.Compare(a.Name, b.Name) })
	return queries, nil
}

// Lookup returns the query with the given name.
func Lookup(name string) (Query, error) {
	queries, err := Queries()
	if err != nil {
		return Query{}, err
	}
	for _, q := range queries {
		if q.Name == name {
			return q, nil
		}
	}
	return Query{}, fmt.Errorf("query %q not found in the pack", name)
}

// ParseQuery parses one query file: header lines "-- key: value", where a
// value may continue on lines that start with "--" and at least two spaces,
// then the SQL. Every key is required except notes and denylist (default
// true, as in osquery).
func ParseQuery(file, text string) (Query, error) {
	q := Query{File: file, Denylist: true}
	fields := make(map[string]string)
	var order []string
	var sql strings.Builder

	// The header ends at the first line that is not a comment.
	inHeader := true
	scanner := bufio.NewScanner(strings.NewReader(text))
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for lineNumber := 1; scanner.Scan(); lineNumber++ {
		line := strings.TrimRight(scanner.Text(), " \t\r")
		if inHeader && strings.HasPrefix(line, "--") {
			if m := headerLine.FindStringSubmatch(line); m != nil {
				if _, dup := fields[m[1]]; dup {
					return Query{}, fmt.Errorf("query file %s line %d: key %q appears twice", file, lineNumber, m[1])
				}
				fields[m[1]] = strings.TrimSpace(m[2])
				order = append(order, m[1])
				continue
			}
			if strings.HasPrefix(line, "--  ") && len(order) > 0 {
				last := order[len(order)-1]
				fields[last] += " " + strings.TrimSpace(strings.TrimPrefix(line, "--"))
				continue
			}
			return Query{}, fmt.Errorf("query file %s line %d: header line %q is neither \"-- key: value\" nor a continuation indented by two spaces", file, lineNumber, line)
		}
		inHeader = false
		sql.WriteString(line)
		sql.WriteByte('\n')
	}
	if err := scanner.Err(); err != nil {
		return Query{}, fmt.Errorf("reading query file %s: %w", file, err)
	}

	if err := q.setFields(fields); err != nil {
		return Query{}, fmt.Errorf("query file %s: %w", file, err)
	}

	q.SQL = strings.TrimSuffix(strings.TrimSpace(sql.String()), ";")
	if q.SQL == "" {
		return Query{}, fmt.Errorf("query file %s: no SQL after the header", file)
	}
	if err := q.Validate(); err != nil {
		return Query{}, fmt.Errorf("query file %s: %w", file, err)
	}
	return q, nil
}

// setFields copies the header values into q, converting numbers and lists.
func (q *Query) setFields(fields map[string]string) error {
	for key, value := range fields {
		var err error
		switch key {
		case "name":
			q.Name = value
		case "description":
			q.Description = value
		case "value":
			q.Value = value
		case "response":
			q.Response = value
		case "notes":
			q.Notes = value
		case "platform":
			q.Platforms = strings.Split(value, ",")
		case "interval":
			q.Interval, err = strconv.Atoi(value)
		case "logging":
			q.Logging = Logging(value)
		case "min_osquery_version":
			q.MinOsqueryVersion = value
		case "denylist":
			q.Denylist, err = strconv.ParseBool(value)
		default:
			return fmt.Errorf("unknown header key %q; the keys are name, description, value, response, notes, platform, interval, logging, min_osquery_version and denylist", key)
		}
		if err != nil {
			return fmt.Errorf("invalid %s %q: %w", key, value, err)
		}
	}

	for _, key := range []string{"name", "description", "value", "response", "platform", "interval", "logging", "min_osquery_version"} {
		if _, ok := fields[key]; !ok {
			return fmt.Errorf("missing header key %q", key)
		}
	}
	return nil
}

// Validate checks the values osquery and Fleet would reject or ignore.
func (q Query) Validate() error {
	if !nameForm.MatchString(q.Name) {
		return fmt.Errorf("invalid name %q: use lower-case letters, digits and underscores", q.Name)
	}
	for _, prefix := range reservedNamePrefixes {
		if strings.HasPrefix(q.Name, prefix) {
			return fmt.Errorf("invalid name %q: osquery reserves the prefix %q", q.Name, prefix)
		}
	}
	for _, suffix := range reservedNameSuffixes {
		if strings.HasSuffix(q.Name, suffix) {
			return fmt.Errorf("invalid name %q: osquery reserves the suffix %q", q.Name, suffix)
		}
	}

	if len(q.Platforms) == 0 {
		return fmt.Errorf("query %s names no platform", q.Name)
	}
	for _, p := range q.Platforms {
		if !slices.Contains(knownPlatforms, p) {
			return fmt.Errorf("query %s: invalid platform %q; use a comma list of %s", q.Name, p, strings.Join(knownPlatforms, ", "))
		}
	}

	if q.Interval < 0 || q.Interval > MaxInterval {
		return fmt.Errorf("query %s: invalid interval %d; use 1 to %d seconds, or 0 for an ad hoc query", q.Name, q.Interval, MaxInterval)
	}

	switch q.Logging {
	case LoggingSnapshot, LoggingDifferential, LoggingDifferentialIgnoreRemovals:
	default:
		return fmt.Errorf("query %s: invalid logging %q; use snapshot, differential or differential_ignore_removals", q.Name, q.Logging)
	}

	if !versionForm.MatchString(q.MinOsqueryVersion) {
		return fmt.Errorf("query %s: invalid min_osquery_version %q; use the form 5.9.1", q.Name, q.MinOsqueryVersion)
	}
	return nil
}
