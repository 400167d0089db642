package remoteservicelaunchsources

import (
	"github.com/osquery/osquery-go/plugin/table"
)

// Name is the osquery table name.
const Name = "remote_service_launch_sources"

// Columns returns the table's columns in output order.
func Columns() []table.ColumnDefinition {
	return []table.ColumnDefinition{
		table.TextColumn("source",
			table.ColumnDescription("Event source of remote_service_launches: sysmon, security, etw, process_events or socket_events")),
		table.TextColumn("table",
			table.ColumnDescription("osquery table the source reads")),
		table.TextColumn("event_ids",
			table.ColumnDescription("Events the source reads: Windows event ids, the ETW event type or the socket action")),
		table.TextColumn("provides",
			table.ColumnDescription("What the source gives the detection: process_starts, connections or both, comma-separated")),
		table.IntegerColumn("table_exists",
			table.ColumnDescription("1 if osquery_registry lists the table, 0 if this osquery lacks it, -1 if unknown")),
		table.IntegerColumn("subscriber_active",
			table.ColumnDescription("1 if osquery_events shows the table's event subscriber running, 0 if not, -1 if unknown")),
		table.IntegerColumn("publisher_active",
			table.ColumnDescription("1 if osquery_events shows the subscriber's event publisher running, 0 if not, -1 if unknown")),
		table.BigIntColumn("events",
			table.ColumnDescription("Events of the listed kinds within the lookback, -1 when not counted because the table is missing or disabled")),
		table.BigIntColumn("newest_event_time",
			table.ColumnDescription("osquery time column of the newest counted event, Unix seconds, 0 when none; in windows_events it is when osquery stored the event")),
		table.BigIntColumn("last_read_time",
			table.ColumnDescription("When remote_service_launches last read or skipped the source, Unix seconds, 0 when it has not run")),
		table.BigIntColumn("rows_read",
			table.ColumnDescription("Rows that last read returned, -1 when the source was not read")),
		table.BigIntColumn("rows_skipped",
			table.ColumnDescription("Rows of that read that could not be decoded")),
		table.TextColumn("skip_reason",
			table.ColumnDescription("Reason that skipped the most rows: missing_field, bad_pid, bad_port, unparsable_time, absurd_time, invalid_json, unknown_direction or unexpected_event")),
		table.IntegerColumn("row_cap_reached",
			table.ColumnDescription("1 if that read returned as many rows as the row cap, so that older events were not read")),
		table.TextColumn("last_error",
			table.ColumnDescription("Error of the event count or of the last read, empty when both succeeded")),
		table.TextColumn("status",
			table.ColumnDescription("ok, missing (osquery has no such table), disabled (flags or subscriber off), empty (a kind of event did not occur within the lookback) or error")),
		table.TextColumn("hint",
			table.ColumnDescription("One line on what to change: the osquery flag, the audit policy or the Sysmon configuration")),
	}
}
