// Package sourcehealth finds out which event sources an osquery host can
// serve and how the detection last read them. The remote_service_launches
// table uses it to query only the sources that are enabled, and the
// remote_service_launch_sources table to tell an administrator, source by
// source, why a host cannot see a remote service launch.
//
// What a Windows host offers depends on its osquery flags, its audit policy
// and whether Sysmon is installed, and a detection that silently reads
// nothing is worse than none. osquery reports its side in three tables:
// osquery_registry lists the tables it has, osquery_events whether each
// event publisher and subscriber runs, and osquery_flags the flags that
// turn them on. Discovery reads them, Stats keeps the detection's last read
// of each source, and Evaluate combines both with a count of recent events
// into a status and a one-line hint.
package sourcehealth

import (
	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
)

// Role is a source's contribution to the rule, as a bit set.
type Role uint8

// Roles of a source.
const (
	RoleProcessStarts Role = 1 << iota
	RoleConnections
)

// Requirement describes what osquery needs to serve one source.
type Requirement struct {
	// Source is the source name (detect.Source*).
	Source string
	// Table is the osquery table the source reads.
	Table string
	// Subscriber is the osquery_events name of the table's event
	// subscriber.
	Subscriber string
	// Roles is whether the source provides process starts, inbound
	// connections or both.
	Roles Role
	// EventIDs lists the events the source reads, as shown in
	// remote_service_launch_sources: event ids, an ETW event type or a
	// socket action.
	EventIDs string
	// Channel is the event log channel that --windows_event_channels must
	// list, or "".
	Channel string
	// EnableFlags are boolean osquery flags that must be true.
	EnableFlags []string
	// DisableFlags are boolean osquery flags that must be false.
	DisableFlags []string
	// MissingHint is how to get the table when osquery lacks it.
	MissingHint string
}

// osquery flags that turn event sources on or off, as osquery_flags names
// them.
const (
	flagDisableEvents          = "disable_events"
	flagWindowsEventsPublisher = "enable_windows_events_publisher"
	flagWindowsEventsSubscribe = "enable_windows_events_subscriber"
	flagWindowsEventChannels   = "windows_event_channels"
	flagProcessETWEvents       = "enable_process_etw_events"
	flagDisableAudit           = "disable_audit"
	flagAuditProcessEvents     = "audit_allow_process_events"
	flagAuditSockets           = "audit_allow_sockets"
	flagAuditAcceptSockets     = "audit_allow_accept_socket_events"
)

// discoveryFlags are the flags Discovery reads from osquery_flags.
var discoveryFlags = []string{
	flagDisableEvents, flagWindowsEventsPublisher, flagWindowsEventsSubscribe, flagWindowsEventChannels,
	flagProcessETWEvents, flagDisableAudit, flagAuditProcessEvents, flagAuditSockets, flagAuditAcceptSockets,
}

// requirements lists the sources svclaunch reads, in the order the
// remote_service_launch_sources table shows them. The subscriber names are
// those osquery registers (REGISTER(..., "event_subscriber", name) in
// osquery/tables/events). osquery_events names each subscriber's publisher
// in its publisher column, so the publisher names need not be listed.
var requirements = []Requirement{
	{
		Source:      detect.SourceSysmon,
		Table:       "windows_events",
		Subscriber:  "windows_events",
		Roles:       RoleProcessStarts | RoleConnections,
		EventIDs:    "1,3",
		Channel:     sources.SysmonChannel,
		EnableFlags: []string{flagWindowsEventsPublisher, flagWindowsEventsSubscribe},
		MissingHint: "osquery has windows_events only on Windows; on Linux and macOS read process_events and socket_events",
	},
	{
		Source:      detect.SourceSecurity,
		Table:       "windows_events",
		Subscriber:  "windows_events",
		Roles:       RoleProcessStarts | RoleConnections,
		EventIDs:    "4688,5156",
		Channel:     sources.SecurityChannel,
		EnableFlags: []string{flagWindowsEventsPublisher, flagWindowsEventsSubscribe},
		MissingHint: "osquery has windows_events only on Windows; on Linux and macOS read process_events and socket_events",
	},
	{
		Source:      detect.SourceETW,
		Table:       sources.ETWTable,
		Subscriber:  sources.ETWTable,
		Roles:       RoleProcessStarts,
		EventIDs:    sources.ETWProcessStart,
		EnableFlags: []string{flagProcessETWEvents},
		MissingHint: "process_etw_events needs osquery 5.8 or later on Windows: upgrade osquery, or read process starts from Sysmon event 1 or Security event 4688",
	},
	{
		Source:       detect.SourceProcessEvents,
		Table:        "process_events",
		Subscriber:   "process_events",
		Roles:        RoleProcessStarts,
		EnableFlags:  []string{flagAuditProcessEvents},
		DisableFlags: []string{flagDisableAudit},
		MissingHint:  "osquery has process_events only on Linux and macOS; on Windows read Sysmon, Security or ETW events",
	},
	{
		Source:       detect.SourceSocketEvents,
		Table:        "socket_events",
		Subscriber:   "socket_events",
		Roles:        RoleConnections,
		EventIDs:     "accept",
		EnableFlags:  []string{flagAuditSockets, flagAuditAcceptSockets},
		DisableFlags: []string{flagDisableAudit},
		MissingHint:  "osquery has socket_events only on Linux and macOS; on Windows read Sysmon event 3 or Security event 5156",
	},
}

// RequirementOf returns the requirement of a source by name, and false for
// a source svclaunch does not know.
func RequirementOf(source string) (Requirement, bool) {
	for _, r := range requirements {
		if r.Source == source {
			return r, true
		}
	}
	return Requirement{}, false
}

// RolesOf returns the roles of a source by name. An unknown source is
// assumed to provide both.
func RolesOf(source string) Role {
	if r, ok := RequirementOf(source); ok {
		return r.Roles
	}
	return RoleProcessStarts | RoleConnections
}
