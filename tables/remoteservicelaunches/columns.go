package remoteservicelaunches

import (
	"github.com/osquery/osquery-go/plugin/table"
)

// Name is the osquery table name.
const Name = "remote_service_launches"

// carURL is the MITRE CAR page of the analytic the table implements.
const carURL = "https://car.mitre.org/analytics/CAR-2014-03-005/"

// Columns returns the table's columns in output order. Only `time` is
// ADDITIONAL, so that osquery passes `time` constraints to Generate, which
// narrows the sub-queries.
func Columns() []table.ColumnDefinition {
	return []table.ColumnDefinition{
		table.BigIntColumn("time", table.AdditionalColumn(),
			table.ColumnDescription("Start of the child process, Unix seconds. Constraints on it narrow the event tables read")),
		table.TextColumn("datetime",
			table.ColumnDescription("Start of the child process, ISO 8601 UTC with as many fractional digits as its source has")),
		table.TextColumn("host",
			table.ColumnDescription("Computer name as the events report it")),
		table.BigIntColumn("pid",
			table.ColumnDescription("Child process id, -1 when no source carried it")),
		table.TextColumn("path",
			table.ColumnDescription("Child process image path")),
		table.TextColumn("cmdline",
			table.ColumnDescription("Child process command line")),
		table.TextColumn("username",
			table.ColumnDescription("Account the child process runs as, empty when unknown")),
		table.BigIntColumn("parent",
			table.ColumnDescription("Process id of the service control manager that started the child, -1 when unknown")),
		table.TextColumn("parent_path",
			table.ColumnDescription("Image path of the parent (services.exe)")),
		table.BigIntColumn("connection_time",
			table.ColumnDescription("Time of the inbound connection nearest before the child, Unix seconds")),
		table.TextColumn("connection_datetime",
			table.ColumnDescription("Time of that connection, ISO 8601 UTC at its source's precision")),
		table.TextColumn("protocol",
			table.ColumnDescription("Protocol of the connection: tcp, udp or the number the source wrote")),
		table.TextColumn("local_address",
			table.ColumnDescription("Address of this host that accepted the connection")),
		table.IntegerColumn("local_port",
			table.ColumnDescription("Port that accepted the connection")),
		table.TextColumn("remote_address",
			table.ColumnDescription("Address of the connecting peer")),
		table.IntegerColumn("remote_port",
			table.ColumnDescription("Port of the connecting peer")),
		table.BigIntColumn("delay_ms",
			table.ColumnDescription("Child start minus connection time, milliseconds, measured at time_precision")),
		table.TextColumn("time_precision",
			table.ColumnDescription("Coarser resolution of the two times the match used: 100ns, ms or s")),
		table.IntegerColumn("connection_count",
			table.ColumnDescription("Number of inbound connections to the parent within the window before the child")),
		table.TextColumn("process_sources",
			table.ColumnDescription("Comma-separated sources that reported the child: sysmon, security, etw, process_events")),
		table.TextColumn("connection_sources",
			table.ColumnDescription("Comma-separated sources that reported the connection: sysmon, security, socket_events")),
	}
}
