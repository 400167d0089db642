package sources

import (
	"strings"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// SecurityChannel is the Security event log channel. Exports write it as
// both `Security` and `security`.
const SecurityChannel = "Security"

// Security event ids that the source reads.
const (
	securityProcessCreation = 4688 // "A new process has been created"
	securityWFPConnection   = 5156 // "The Windows Filtering Platform has permitted a connection"
)

var securityEventIDs = []int{securityProcessCreation, securityWFPConnection}

// Security reads process creations (4688) and permitted connections (5156)
// from the Security log through windows_events.
type Security struct{}

// NewSecurity returns the Security log source.
func NewSecurity() *Security {
	return &Security{}
}

// Name returns detect.SourceSecurity.
func (*Security) Name() string { return detect.SourceSecurity }

// Table returns "windows_events".
func (*Security) Table() string { return "windows_events" }

// Query returns the SELECT of Security events 4688 and 5156 within bounds.
func (s *Security) Query(bounds Bounds) (string, error) {
	return windowsQuery(s.Name(), SecurityChannel, securityEventIDs, bounds)
}

// Decode converts Security rows. 4688 becomes a ProcessStart, 5156 with an
// inbound direction a Connection whose destination is the local side.
// Outbound 5156 rows add their SourceAddress to the host's own addresses and
// are otherwise dropped. Times come from the row's datetime, at the
// resolution its fractional digits give.
func (s *Security) Decode(rows []map[string]string) *Events {
	return decodeWindowsRows(rows, SecurityChannel, securityEventIDs, func(events *Events, event windowsEvent) string {
		switch event.eventID {
		case securityProcessCreation:
			return decodeProcessCreation(events, event)
		case securityWFPConnection:
			return decodeWFPConnection(events, event)
		default:
			return SkipUnexpectedEvent
		}
	})
}

// decodeProcessCreation decodes a 4688 event. Its pids are hexadecimal
// (`0x2344`, `0x0000000000000c24`), and ProcessId is the creator's.
// ParentProcessName is missing before event version 2 (Windows 10 and
// Server 2016).
func decodeProcessCreation(events *Events, event windowsEvent) string {
	data := event.data
	if data.get("NewProcessId") == "" {
		return SkipMissingField
	}
	pid, err := parsePID(data.get("NewProcessId"))
	if err != nil {
		return SkipBadPID
	}
	parentPID, err := parsePID(data.get("ProcessId"))
	if err != nil {
		return SkipBadPID
	}

	timestamp, err := parseUTCTime(event.datetime)
	if err != nil {
		return timeSkipReason(err)
	}

	events.Processes = append(events.Processes, detect.ProcessStart{
		Host:       event.host,
		PID:        pid,
		ParentPID:  parentPID,
		ParentPath: data.get("ParentProcessName"),
		Path:       data.get("NewProcessName"),
		Cmdline:    data.raw("CommandLine"),
		Username:   processCreationUser(data),
		Time:       timestamp,
		Sources:    []string{detect.SourceSecurity},
	})
	return ""
}

// wellKnownLogons names the accounts of the logon sessions with fixed ids.
// Security events show them under the machine account (`WORKSTATION6$`),
// while Sysmon writes the account name; mapping them lets both sources
// report one user.
var wellKnownLogons = map[string]string{
	"0x3e7": `NT AUTHORITY\SYSTEM`,
	"0x3e4": `NT AUTHORITY\NETWORK SERVICE`,
	"0x3e5": `NT AUTHORITY\LOCAL SERVICE`,
}

// processCreationUser returns the account of the new process: the target
// subject when 4688 names one, otherwise the creator's account, which the
// new process inherits.
func processCreationUser(data eventData) string {
	if user := qualifiedUser(data.get("TargetDomainName"), data.get("TargetUserName")); user != "" {
		return user
	}
	if name, ok := wellKnownLogons[strings.ToLower(data.get("SubjectLogonId"))]; ok {
		return name
	}
	return qualifiedUser(data.get("SubjectDomainName"), data.get("SubjectUserName"))
}

// qualifiedUser returns DOMAIN\user, or user alone without a domain. The
// Security log writes "-" for an empty field.
func qualifiedUser(domain, user string) string {
	if user == "" || user == "-" {
		return ""
	}
	if domain == "" || domain == "-" {
		return user
	}
	return domain + `\` + user
}

// decodeWFPConnection decodes a 5156 event. The pid is decimal, under
// ProcessID in Microsoft's documentation and ProcessId in some exports. The
// application path is an NT device path
// (`\device\harddiskvolume2\windows\system32\services.exe`).
func decodeWFPConnection(events *Events, event windowsEvent) string {
	data := event.data
	inbound, known := isInbound(data.get("Direction"))
	if !known {
		return SkipUnknownDirection
	}
	if !inbound {
		events.addHostAddress(event.host, data.get("SourceAddress"))
		return ""
	}

	pidText := data.get("ProcessID")
	if pidText == "" {
		pidText = data.get("ProcessId")
	}
	if pidText == "" {
		return SkipMissingField
	}
	pid, err := parsePID(pidText)
	if err != nil {
		return SkipBadPID
	}

	remoteAddress, localAddress := data.get("SourceAddress"), data.get("DestAddress")
	if remoteAddress == "" || localAddress == "" || data.get("SourcePort") == "" || data.get("DestPort") == "" {
		return SkipMissingField
	}
	remotePort, err := parsePort(data.get("SourcePort"))
	if err != nil {
		return SkipBadPort
	}
	localPort, err := parsePort(data.get("DestPort"))
	if err != nil {
		return SkipBadPort
	}

	timestamp, err := parseUTCTime(event.datetime)
	if err != nil {
		return timeSkipReason(err)
	}

	// A datagram's destination may be a subnet broadcast address, which
	// cannot be distinguished from a unicast one without the netmask. The
	// local address of an accepted TCP connection is always the host's own.
	protocol := protocolName(data.get("Protocol"))
	if protocol == "tcp" {
		events.addHostAddress(event.host, localAddress)
	}
	events.Connections = append(events.Connections, detect.Connection{
		Host:          event.host,
		PID:           pid,
		Path:          data.get("Application"),
		Inbound:       true,
		Protocol:      protocol,
		LocalAddress:  canonicalAddress(localAddress),
		LocalPort:     localPort,
		RemoteAddress: canonicalAddress(remoteAddress),
		RemotePort:    remotePort,
		Time:          timestamp,
		Sources:       []string{detect.SourceSecurity},
	})
	return ""
}
