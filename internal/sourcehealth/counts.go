package sourcehealth

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	sq "github.com/Masterminds/squirrel"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/sqlliteral"
)

// NotCounted marks a count that was not taken.
const NotCounted int64 = -1

// Counts is the number of one source's events within the lookback.
type Counts struct {
	// ByKind counts the events by event id (Sysmon, Security), event type
	// (ETW) or action (socket_events); process_events has the single kind
	// "".
	ByKind map[string]int64
	// Newest is the largest `time` among the counted events, Unix seconds;
	// 0 when there is none. In windows_events `time` is when osquery stored
	// the event.
	Newest int64
	// ParentConnections counts the Sysmon events 3 whose image is one of
	// the parent names (services.exe); NotCounted for other sources.
	ParentConnections int64
	// WithoutCmdline counts the Security events 4688 without a command
	// line; NotCounted for other sources.
	WithoutCmdline int64
}

// Kind returns the count of one kind.
func (c Counts) Kind(kind string) int64 {
	return c.ByKind[kind]
}

// Total returns the count over the kinds the detection reads: every kind
// except ETW's ProcessStop, which the detection does not use.
func (c Counts) Total() int64 {
	var total int64
	for kind, n := range c.ByKind {
		if kind != sources.ETWProcessStop {
			total += n
		}
	}
	return total
}

// Column aliases of the count queries.
const (
	aliasKind              = "kind"
	aliasEvents            = "events"
	aliasNewest            = "newest"
	aliasParentConnections = "parent_connections"
	aliasWithoutCmdline    = "without_cmdline"
)

// CountQuery returns the query that counts a source's events with
// `time >= lower`, grouped by kind. parentNames are the image base names of
// the service control manager, for the count of Sysmon connections they
// accepted.
func CountQuery(source string, lower int64, parentNames []string) (string, error) {
	names, err := sqlliteral.Idents("time", "eventid", "source", "data", "type", "action")
	if err != nil {
		return "", err
	}
	timeColumn, eventID, channel, data, eventType, action := names[0], names[1], names[2], names[3], names[4], names[5]

	counted := func(table, kind string) (sq.SelectBuilder, error) {
		checked, err := sqlliteral.Ident(table)
		if err != nil {
			return sq.SelectBuilder{}, err
		}
		query := sq.Select().From(checked).Where(sq.GtOrEq{timeColumn: lower})
		if kind != "" {
			query = query.Column(kind + " AS " + aliasKind).GroupBy(kind)
		}
		return query.
			Column("count(*) AS " + aliasEvents).
			Column("max(" + timeColumn + ") AS " + aliasNewest), nil
	}

	var query sq.SelectBuilder
	switch source {
	case detect.SourceSysmon:
		query, err = counted("windows_events", eventID)
		query = query.
			Where(sq.Eq{"lower(" + channel + ")": strings.ToLower(sources.SysmonChannel)}).
			Where(sq.Eq{eventID: []int{1, 3}})
		if image := imageIsParent(data, parentNames); image != nil {
			query = query.Column(sq.Alias(sumWhen(image), aliasParentConnections))
		}
	case detect.SourceSecurity:
		query, err = counted("windows_events", eventID)
		query = query.
			Where(sq.Eq{"lower(" + channel + ")": strings.ToLower(sources.SecurityChannel)}).
			Where(sq.Eq{eventID: []int{4688, 5156}}).
			Column(sq.Alias(sumWhen(sq.Expr("coalesce(json_extract("+data+", ?), '') = ''", "$.EventData.CommandLine")), aliasWithoutCmdline))
	case detect.SourceETW:
		query, err = counted(sources.ETWTable, eventType)
	case detect.SourceProcessEvents:
		query, err = counted("process_events", "")
	case detect.SourceSocketEvents:
		query, err = counted("socket_events", action)
	default:
		return "", fmt.Errorf("counting events of source %q: unknown source; known sources are sysmon, security, etw, process_events and socket_events", source)
	}
	if err != nil {
		return "", err
	}

	sql, err := sqlliteral.Render(query)
	if err != nil {
		return "", fmt.Errorf("building the %s count query: %w", source, err)
	}
	return sql, nil
}

// sumWhen returns `sum(CASE WHEN cond THEN 1 ELSE 0 END)`.
func sumWhen(cond sq.Sqlizer) sq.Sqlizer {
	return sq.Expr("sum(CASE WHEN ? THEN 1 ELSE 0 END)", cond)
}

// imageIsParent returns the condition that a Sysmon event's Image is one of
// the parent names, compared as lower-case base names, or nil without
// names. A suffix comparison with substr avoids LIKE, whose wildcards a
// configured name could contain.
func imageIsParent(data string, parentNames []string) sq.Sqlizer {
	image := "lower(json_extract(" + data + ", '$.EventData.Image'))"
	var matches sq.Or
	for _, name := range parentNames {
		suffix := `\` + strings.ToLower(name)
		matches = append(matches, sq.Expr("substr("+image+", ?) = ?", -utf8.RuneCountInString(suffix), suffix))
	}
	if len(matches) == 0 {
		return nil
	}
	return matches
}

// ParseCounts reads the rows of a source's CountQuery.
func ParseCounts(source string, rows []map[string]string) (Counts, error) {
	c := Counts{ByKind: map[string]int64{}, ParentConnections: NotCounted, WithoutCmdline: NotCounted}
	for _, row := range rows {
		events, err := parseCount(row[aliasEvents])
		if err != nil {
			return c, fmt.Errorf("reading the %s event count: %w", source, err)
		}
		kind := row[aliasKind]
		c.ByKind[kind] += events

		if newest, err := parseCount(row[aliasNewest]); err == nil && newest > c.Newest {
			c.Newest = newest
		}

		switch {
		case source == detect.SourceSysmon && kind == "3":
			if n, err := parseCount(row[aliasParentConnections]); err == nil && row[aliasParentConnections] != "" {
				c.ParentConnections = n
			}
		case source == detect.SourceSecurity && kind == "4688":
			if n, err := parseCount(row[aliasWithoutCmdline]); err == nil {
				c.WithoutCmdline = n
			}
		}
	}

	// A kind with no rows had no events; the counts without a row are zero
	// rather than unknown.
	if source == detect.SourceSysmon && c.ParentConnections == NotCounted && c.Kind("3") == 0 {
		c.ParentConnections = 0
	}
	if source == detect.SourceSecurity && c.WithoutCmdline == NotCounted {
		c.WithoutCmdline = 0
	}
	return c, nil
}

// parseCount parses an integer column; NULL, which osquery returns as "",
// is 0.
func parseCount(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid count %q", s)
	}
	return n, nil
}
