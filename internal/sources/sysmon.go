package sources

import (
	"strings"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// SysmonChannel is the event log channel of Sysmon. osquery subscribes to it
// when --windows_event_channels names it.
const SysmonChannel = "Microsoft-Windows-Sysmon/Operational"

// Sysmon event ids that the source reads.
const (
	sysmonProcessCreate     = 1
	sysmonNetworkConnection = 3
)

var sysmonEventIDs = []int{sysmonProcessCreate, sysmonNetworkConnection}

// Sysmon reads Sysmon process creations (event 1) and network connections
// (event 3) from windows_events.
type Sysmon struct{}

// NewSysmon returns the Sysmon source.
func NewSysmon() *Sysmon {
	return &Sysmon{}
}

// Name returns detect.SourceSysmon.
func (*Sysmon) Name() string { return detect.SourceSysmon }

// Table returns "windows_events".
func (*Sysmon) Table() string { return "windows_events" }

// Query returns the SELECT of Sysmon events 1 and 3 within bounds.
func (s *Sysmon) Query(bounds Bounds) (string, error) {
	return windowsQuery(s.Name(), SysmonChannel, sysmonEventIDs, bounds)
}

// Decode converts Sysmon rows. Event 1 becomes a ProcessStart keyed by
// ProcessGuid, event 3 with Initiated false an inbound Connection. Outbound
// event 3 rows add their SourceIp to the host's own addresses and are
// otherwise dropped.
//
// Times come from UtcTime in the event data (milliseconds), because Sysmon
// writes network events late, so the record's creation time (`datetime`) can
// trail the connection by seconds. `datetime` is the fallback when UtcTime is
// missing.
//
// Some forwarders drop ProcessId from Sysmon events. The pid is then
// detect.UnknownPID, and the ProcessGuid still links a connection to the
// children of the same process.
func (s *Sysmon) Decode(rows []map[string]string) *Events {
	events := decodeWindowsRows(rows, SysmonChannel, sysmonEventIDs, func(events *Events, event windowsEvent) string {
		switch event.eventID {
		case sysmonProcessCreate:
			return decodeSysmonProcess(events, event)
		case sysmonNetworkConnection:
			return decodeSysmonConnection(events, event)
		default:
			return SkipUnexpectedEvent
		}
	})

	events.Orient()
	return events
}

// sysmonTime returns the event's UtcTime, or its datetime when UtcTime is
// missing or invalid, and the skip reason when neither can be used.
func sysmonTime(event windowsEvent) (detect.Timestamp, string) {
	utc, utcErr := parseUTCTime(event.data.get("UtcTime"))
	if utcErr == nil {
		return utc, ""
	}

	created, err := parseUTCTime(event.datetime)
	if err == nil {
		return created, ""
	}
	if event.data.get("UtcTime") != "" {
		return detect.Timestamp{}, timeSkipReason(utcErr)
	}
	return detect.Timestamp{}, timeSkipReason(err)
}

func decodeSysmonProcess(events *Events, event windowsEvent) string {
	data := event.data
	instance := strings.ToLower(data.get("ProcessGuid"))
	pid, err := parsePID(data.get("ProcessId"))
	if err != nil {
		return SkipBadPID
	}
	if instance == "" && pid == detect.UnknownPID {
		return SkipMissingField
	}
	parentPID, err := parsePID(data.get("ParentProcessId"))
	if err != nil {
		return SkipBadPID
	}

	timestamp, reason := sysmonTime(event)
	if reason != "" {
		return reason
	}

	events.Processes = append(events.Processes, detect.ProcessStart{
		Host:           event.host,
		PID:            pid,
		Instance:       instance,
		ParentPID:      parentPID,
		ParentInstance: strings.ToLower(data.get("ParentProcessGuid")),
		ParentPath:     data.get("ParentImage"),
		Path:           data.get("Image"),
		Cmdline:        data.raw("CommandLine"),
		Username:       data.get("User"),
		Time:           timestamp,
		Sources:        []string{detect.SourceSysmon},
	})
	return ""
}

func decodeSysmonConnection(events *Events, event windowsEvent) string {
	data := event.data
	inbound, known := sysmonInbound(data.get("Initiated"))
	if !known {
		return SkipUnknownDirection
	}
	if !inbound {
		// For an outbound connection the 2019 and 2020 Sysmon builds in
		// the recordings write the initiating, local side as the source.
		events.addHostAddress(event.host, data.get("SourceIp"))
		return ""
	}

	instance := strings.ToLower(data.get("ProcessGuid"))
	pid, err := parsePID(data.get("ProcessId"))
	if err != nil {
		return SkipBadPID
	}
	if instance == "" && pid == detect.UnknownPID {
		return SkipMissingField
	}

	sourceAddress, destinationAddress := data.get("SourceIp"), data.get("DestinationIp")
	if sourceAddress == "" || destinationAddress == "" || data.get("SourcePort") == "" || data.get("DestinationPort") == "" {
		return SkipMissingField
	}
	sourcePort, err := parsePort(data.get("SourcePort"))
	if err != nil {
		return SkipBadPort
	}
	destinationPort, err := parsePort(data.get("DestinationPort"))
	if err != nil {
		return SkipBadPort
	}

	timestamp, reason := sysmonTime(event)
	if reason != "" {
		return reason
	}

	events.addPending(detect.Connection{
		Host:     event.host,
		PID:      pid,
		Instance: instance,
		Path:     data.get("Image"),
		Inbound:  true,
		Protocol: protocolName(data.get("Protocol")),
		Time:     timestamp,
		Sources:  []string{detect.SourceSysmon},
	},
		endpoint{address: canonicalAddress(sourceAddress), port: sourcePort, hostname: data.get("SourceHostname")},
		endpoint{address: canonicalAddress(destinationAddress), port: destinationPort, hostname: data.get("DestinationHostname")},
	)
	return ""
}

// sysmonInbound reads Sysmon's Initiated field: "false" (any case) or "0"
// for a connection the process accepted.
func sysmonInbound(initiated string) (inbound, known bool) {
	switch strings.ToLower(initiated) {
	case "false", "0":
		return true, true
	case "true", "1":
		return false, true
	}
	return isInbound(initiated)
}
