// Package detect correlates process starts with inbound connections of the
// same parent process: MITRE CAR-2014-03-005, "Remotely Launched Executables
// via Services". It performs no I/O: callers decode events from osquery or
// from recordings into the types below and receive detections back.
package detect

import (
	"time"
)

// Common time resolutions of the event sources.
const (
	// ResolutionFiletime is the 100 ns tick of Windows FILETIME values
	// (windows_events.datetime, process_etw_events.time_windows).
	ResolutionFiletime = 100 * time.Nanosecond
	// ResolutionMillisecond is the resolution of Sysmon's UtcTime.
	ResolutionMillisecond = time.Millisecond
	// ResolutionSecond is the resolution of osquery's integer time columns
	// and of zone-less NXLog EventTime values.
	ResolutionSecond = time.Second
)

// Timestamp is an event time together with the resolution of its source. The
// true instant lies in the half-open interval [UnixNano, UnixNano+Resolution).
type Timestamp struct {
	UnixNano   int64
	Resolution time.Duration
}

// Time returns the start of the timestamp's interval as a time.Time in UTC.
func (t Timestamp) Time() time.Time {
	return time.Unix(0, t.UnixNano).UTC()
}

// IsZero reports whether the timestamp was never set.
func (t Timestamp) IsZero() bool {
	return t.UnixNano == 0 && t.Resolution == 0
}

// Source names used in ProcessStart.Sources and Connection.Sources.
const (
	SourceSysmon        = "sysmon"         // Microsoft-Windows-Sysmon/Operational events 1 and 3
	SourceSecurity      = "security"       // Security events 4688 and 5156
	SourceETW           = "etw"            // process_etw_events
	SourceProcessEvents = "process_events" // Linux and macOS process_events
	SourceSocketEvents  = "socket_events"  // Linux and macOS socket_events
)

// UnknownPID marks a process id that the event did not carry.
const UnknownPID int64 = -1

// ProcessStart is one process creation, normalized from any source.
type ProcessStart struct {
	// Host is the computer name as the source reports it; state is keyed by it.
	Host string
	// PID is the new process's id, or UnknownPID.
	PID int64
	// Instance identifies this process instance across pid reuse: a Sysmon
	// ProcessGuid, an ETW process sequence number with the InstanceKindETW
	// prefix, or empty when unknown. A merged record holds one key of each
	// kind its sources reported, separated by spaces. Keys of different
	// kinds are never compared (see InstanceKind).
	Instance string
	// ParentPID is the creator's process id, or UnknownPID.
	ParentPID int64
	// ParentInstance is the parent's instance key (Sysmon ParentProcessGuid,
	// ETW parent sequence number), or empty when unknown, in the form of
	// Instance.
	ParentInstance string
	// ParentPath is the parent's image path in whatever form the source
	// writes it; empty when the source does not carry it.
	ParentPath string
	Path       string
	Cmdline    string
	Username   string
	Time       Timestamp
	// HeaderPID is the pid of the process that reported the start, which
	// ETW records in its event header, or 0 when the source does not carry
	// it. It normally equals ParentPID, and a difference hints at parent
	// pid spoofing.
	HeaderPID int64
	// Sources lists every source that reported this process, sorted.
	Sources []string
}

// Connection is one network connection of a process, normalized from any
// source. Sources orient the addresses before calling the detector: Local is
// the host's side of the connection, Remote the peer's.
type Connection struct {
	Host string
	// PID is the owning process's id, or UnknownPID.
	PID int64
	// Instance is the owning process's instance key, in the form of
	// ProcessStart.Instance, or empty.
	Instance string
	// Path is the owning process's image path, or empty.
	Path string
	// Inbound is true when the owning process accepted the connection.
	Inbound       bool
	Protocol      string
	LocalAddress  string
	LocalPort     int
	RemoteAddress string
	RemotePort    int
	Time          Timestamp
	Sources       []string
}

// Options tunes the rule. The zero value is not valid: start from
// DefaultOptions.
type Options struct {
	// Window is the largest delay from the connection to the child's start.
	Window time.Duration
	// ParentNames are the image base names that count as the service
	// control manager, compared case-insensitively.
	ParentNames []string
	// IncludeLoopback keeps connections whose remote address is the host
	// itself (127.0.0.0/8, ::1, ::ffff:127.0.0.1, the host's own addresses).
	IncludeLoopback bool
	// ClockTolerance lets a child start up to this long before its
	// connection's timestamp, for sources that stamp connections late.
	ClockTolerance time.Duration
	// HostAddresses lists each host's own addresses (keyed by Host); a
	// connection from one of them counts as loopback.
	HostAddresses map[string][]string
}

// DefaultOptions returns the strict rule: a 1 s window, services.exe as the
// only parent, loopback excluded and no clock tolerance.
func DefaultOptions() Options {
	return Options{
		Window:      time.Second,
		ParentNames: []string{"services.exe"},
	}
}

// Precision names reported in Detection.Precision.
const (
	Precision100ns       = "100ns"
	PrecisionMillisecond = "ms"
	PrecisionSecond      = "s"
)

// Detection is one child process of the service control manager that
// started within the window after an inbound connection to the same parent
// process instance.
type Detection struct {
	Process ProcessStart
	// Connection is the qualifying connection nearest before the child.
	Connection Connection
	// ConnectionCount is the number of qualifying connections.
	ConnectionCount int
	// DelayMillis is the child's start minus the connection's time, in
	// milliseconds, measured on the coarser of the two resolutions.
	DelayMillis int64
	// Precision is the coarser resolution of the two timestamps, as one of
	// the Precision constants.
	Precision string
}
