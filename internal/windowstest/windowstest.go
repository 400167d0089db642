// Package windowstest builds the Windows osquery hosts that tests of the
// remote_service_launches and remote_service_launch_sources tables run
// against: a recording's events as one set-up (Sysmon only, Security
// auditing only, ETW with Security, or all three) would store them, with
// the osquery_flags, osquery_registry and osquery_events rows of such a
// host.
//
// No recording holds process_etw_events rows, so ETWRows converts the
// recorded process creations (Security 4688 and Sysmon 1) into the rows
// osquery's ETW subscriber writes.
package windowstest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// Setup is the event sources one Windows host has turned on.
type Setup struct {
	// Name names the set-up in test names.
	Name string
	// Sysmon subscribes osquery to Sysmon's channel and keeps its events.
	Sysmon bool
	// SecurityEvents are the Security event ids the audit policy logs.
	// Without any, the Security channel is not subscribed.
	SecurityEvents []int
	// ETW turns on --enable_process_etw_events and adds ETW rows for the
	// recording's process creations.
	ETW bool
}

// The set-ups of docs/windows-sources.md.
var (
	SysmonOnly      = Setup{Name: "sysmon only", Sysmon: true}
	SecurityOnly    = Setup{Name: "security only", SecurityEvents: []int{4688, 5156}}
	ETWWithSecurity = Setup{Name: "etw with security 5156", SecurityEvents: []int{5156}, ETW: true}
	AllSources      = Setup{Name: "sysmon, security and etw", Sysmon: true, SecurityEvents: []int{4688, 5156}, ETW: true}
)

// ETWOffset is how much later than Sysmon's UtcTime the converted ETW
// events are stamped: an arbitrary 432.1 µs, so that the 100 ns time is
// visibly ETW's own.
const ETWOffset = 432100 * time.Nanosecond

// ServicesProcess is a processes row of the running services.exe.
type ServicesProcess struct {
	PID       int64
	Path      string
	StartTime int64
}

// Row returns the processes row.
func (p ServicesProcess) Row() map[string]string {
	return map[string]string{
		"pid":        strconv.FormatInt(p.PID, 10),
		"name":       "services.exe",
		"path":       p.Path,
		"start_time": strconv.FormatInt(p.StartTime, 10),
		"parent":     "556",
		"state":      "S",
		"threads":    "8",
	}
}

// EmpireServices is services.exe on WORKSTATION6 in the Empire PsExec
// recording: pid 704, started at 2020-09-18 17:03:33 UTC, the time its
// Sysmon ProcessGuid {d273d0f0-e865-5f64-...} encodes (0x5f64e865).
var EmpireServices = ServicesProcess{PID: 704, Path: `C:\Windows\System32\services.exe`, StartTime: 1600448613}

// Load inserts the recording's rows as a host with setup would store them
// into e, with osquery's own tables describing that host, and sets e's
// clock to the recording's newest event. services is the processes row of
// services.exe, used when setup.ETW is set.
func Load(ctx context.Context, e *engine.Engine, batch *telemetry.Batch, setup Setup, services ServicesProcess) error {
	for table, rows := range batch.Rows {
		if table == telemetry.WindowsEventsTable {
			rows = keepEvents(rows, setup)
		}
		if len(rows) == 0 {
			continue
		}
		if err := e.Insert(ctx, table, rows); err != nil {
			return fmt.Errorf("loading %s: %w", table, err)
		}
	}

	if setup.ETW {
		etw, err := ETWRows(batch)
		if err != nil {
			return err
		}
		if err := e.Insert(ctx, sources.ETWTable, etw); err != nil {
			return fmt.Errorf("loading %s: %w", sources.ETWTable, err)
		}
		if err := e.Insert(ctx, "processes", []map[string]string{services.Row()}); err != nil {
			return fmt.Errorf("loading processes: %w", err)
		}
	}

	if err := DescribeHost(ctx, e, setup); err != nil {
		return err
	}
	e.SetClock(batch.Clock)
	return nil
}

// keepEvents returns the windows_events rows that setup logs.
func keepEvents(rows []map[string]string, setup Setup) []map[string]string {
	var kept []map[string]string
	for _, row := range rows {
		channel := row["source"]
		switch {
		case strings.EqualFold(channel, sources.SysmonChannel):
			if setup.Sysmon {
				kept = append(kept, row)
			}
		case strings.EqualFold(channel, sources.SecurityChannel):
			id, err := strconv.Atoi(row["eventid"])
			if err == nil && slices.Contains(setup.SecurityEvents, id) {
				kept = append(kept, row)
			}
		default:
			kept = append(kept, row)
		}
	}
	return kept
}

// DescribeHost writes the osquery_flags, osquery_registry and
// osquery_events rows of a Windows osqueryd 5.23 with setup into e. Both
// event tables exist in every set-up, as they do in osquery on Windows.
func DescribeHost(ctx context.Context, e *engine.Engine, setup Setup) error {
	windowsEvents := setup.Sysmon || len(setup.SecurityEvents) > 0
	channels := []string{"System", "Application", "Setup"}
	if len(setup.SecurityEvents) > 0 {
		channels = append(channels, sources.SecurityChannel)
	}
	if setup.Sysmon {
		channels = append(channels, sources.SysmonChannel)
	}

	flag := func(name, kind, value, defaultValue string) map[string]string {
		return map[string]string{"name": name, "type": kind, "value": value, "default_value": defaultValue, "description": "", "shell_only": "0"}
	}
	flags := []map[string]string{
		flag("disable_events", "bool", "false", "false"),
		flag("enable_windows_events_publisher", "bool", strconv.FormatBool(windowsEvents), "false"),
		flag("enable_windows_events_subscriber", "bool", strconv.FormatBool(windowsEvents), "false"),
		flag("windows_event_channels", "string", strings.Join(channels, ","), "System,Application,Setup,Security"),
		flag("enable_process_etw_events", "bool", strconv.FormatBool(setup.ETW), "false"),
	}

	var registry []map[string]string
	for _, table := range []string{"time", "processes", "windows_events", sources.ETWTable, "osquery_events", "osquery_flags", "osquery_registry"} {
		registry = append(registry, map[string]string{"registry": "table", "name": table, "owner_uuid": "0", "internal": "0", "active": "1"})
	}

	events := []map[string]string{
		eventsRow("WindowsEventLogPublisher", "WindowsEventLogPublisher", "publisher", windowsEvents),
		eventsRow("etw_process_publisher", "etw_process_publisher", "publisher", setup.ETW),
		eventsRow("windows_events", "WindowsEventLogPublisher", "subscriber", windowsEvents),
		eventsRow(sources.ETWTable, "etw_process_publisher", "subscriber", setup.ETW),
	}

	for table, rows := range map[string][]map[string]string{"osquery_flags": flags, "osquery_registry": registry, "osquery_events": events} {
		if _, err := e.QueryRows(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("emptying %s: %w", table, err)
		}
		if err := e.Insert(ctx, table, rows); err != nil {
			return fmt.Errorf("describing the host in %s: %w", table, err)
		}
	}
	return nil
}

func eventsRow(name, publisher, kind string, active bool) map[string]string {
	state := "0"
	if active {
		state = "1"
	}
	return map[string]string{
		"name": name, "publisher": publisher, "type": kind, "subscriptions": "1",
		"events": "0", "refreshes": "0", "active": state,
	}
}

// creation is one recorded process creation.
type creation struct {
	pid, ppid     int64
	path, cmdline string
	username      string
	at            time.Time
}

// ETWRows converts the recording's process creations into ProcessStart
// rows of process_etw_events as osquery writes them. Each Security 4688
// event becomes one row with its pids. Its time and user come from the
// Sysmon event 1 of the same process (same image, command line and parent
// pid within 5 s), stamped ETWOffset later, else from the 4688 event. Sysmon
// events 1 without a 4688 event become rows when they carry ProcessId.
// Sequence numbers count up in time order from 1000. A parent that started
// before the recording gets 10000 plus its pid. header_pid is the parent
// pid, as the kernel logs a start in its creator's context.
func ETWRows(batch *telemetry.Batch) ([]map[string]string, error) {
	var security, sysmon []creation
	for _, row := range batch.Rows[telemetry.WindowsEventsTable] {
		isSecurity := strings.EqualFold(row["source"], sources.SecurityChannel) && row["eventid"] == "4688"
		isSysmon := strings.EqualFold(row["source"], sources.SysmonChannel) && row["eventid"] == "1"
		if !isSecurity && !isSysmon {
			continue
		}

		var event struct{ EventData map[string]string }
		if err := json.Unmarshal([]byte(row["data"]), &event); err != nil {
			return nil, fmt.Errorf("reading the data of a process creation event: %w", err)
		}
		if isSecurity {
			c, err := securityCreation(row, event.EventData)
			if err != nil {
				return nil, err
			}
			security = append(security, c)
			continue
		}
		c, err := sysmonCreation(event.EventData)
		if err != nil {
			return nil, err
		}
		sysmon = append(sysmon, c)
	}

	creations := matchCreations(security, sysmon)
	slices.SortStableFunc(creations, func(a, b creation) int { return a.at.Compare(b.at) })

	sequenceOf := map[int64]int64{}
	var rows []map[string]string
	for i, c := range creations {
		sequence := int64(1000 + i)
		parentSequence, ok := sequenceOf[c.ppid]
		if !ok {
			parentSequence = 10000 + c.ppid
		}
		sequenceOf[c.pid] = sequence

		rows = append(rows, map[string]string{
			"type":                           sources.ETWProcessStart,
			"pid":                            strconv.FormatInt(c.pid, 10),
			"ppid":                           strconv.FormatInt(c.ppid, 10),
			"session_id":                     "0",
			"flags":                          "0",
			"path":                           c.path,
			"cmdline":                        c.cmdline,
			"username":                       c.username,
			"token_elevation_type":           "TokenElevationTypeDefault",
			"token_elevation_status":         "1",
			"mandatory_label":                "S-1-16-16384",
			"datetime":                       strconv.FormatInt(c.at.Unix(), 10),
			"time":                           strconv.FormatInt(c.at.Unix(), 10),
			"time_windows":                   strconv.FormatInt(Filetime(c.at), 10),
			"header_pid":                     strconv.FormatInt(c.ppid, 10),
			"process_sequence_number":        strconv.FormatInt(sequence, 10),
			"parent_process_sequence_number": strconv.FormatInt(parentSequence, 10),
		})
	}
	return rows, nil
}

// Filetime returns t as a Windows FILETIME: 100 ns ticks since 1601-01-01
// UTC.
func Filetime(t time.Time) int64 {
	return t.UnixNano()/100 + 116_444_736_000_000_000
}

// matchCreations returns the Security creations with the time and user of
// their Sysmon twin, followed by the Sysmon creations without a twin that
// carry a pid.
func matchCreations(security, sysmon []creation) []creation {
	used := make([]bool, len(sysmon))
	out := make([]creation, 0, len(security))
	for _, s := range security {
		for j, y := range sysmon {
			if used[j] || !strings.EqualFold(y.path, s.path) || y.cmdline != s.cmdline || y.ppid != s.ppid {
				continue
			}
			if gap := y.at.Sub(s.at); gap < -5*time.Second || gap > 5*time.Second {
				continue
			}
			used[j] = true
			s.at = y.at.Add(ETWOffset)
			s.username = cmp.Or(y.username, s.username)
			break
		}
		out = append(out, s)
	}

	for j, y := range sysmon {
		if !used[j] && y.pid >= 0 {
			y.at = y.at.Add(ETWOffset)
			out = append(out, y)
		}
	}
	return out
}

func securityCreation(row, data map[string]string) (creation, error) {
	pid, err := strconv.ParseInt(strings.TrimPrefix(strings.ToLower(data["NewProcessId"]), "0x"), 16, 64)
	if err != nil {
		return creation{}, fmt.Errorf("reading NewProcessId %q: %w", data["NewProcessId"], err)
	}
	ppid, err := strconv.ParseInt(strings.TrimPrefix(strings.ToLower(data["ProcessId"]), "0x"), 16, 64)
	if err != nil {
		return creation{}, fmt.Errorf("reading ProcessId %q: %w", data["ProcessId"], err)
	}
	at, err := time.Parse(time.RFC3339Nano, row["datetime"])
	if err != nil {
		return creation{}, fmt.Errorf("reading datetime %q: %w", row["datetime"], err)
	}

	username := ""
	if data["SubjectLogonId"] == "0x3e7" {
		username = `NT AUTHORITY\SYSTEM`
	}
	return creation{pid: pid, ppid: ppid, path: data["NewProcessName"], cmdline: data["CommandLine"], username: username, at: at}, nil
}

func sysmonCreation(data map[string]string) (creation, error) {
	pid := int64(-1)
	if text := data["ProcessId"]; text != "" {
		parsed, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return creation{}, fmt.Errorf("reading ProcessId %q: %w", text, err)
		}
		pid = parsed
	}
	ppid, err := strconv.ParseInt(data["ParentProcessId"], 10, 64)
	if err != nil {
		return creation{}, fmt.Errorf("reading ParentProcessId %q: %w", data["ParentProcessId"], err)
	}
	at, err := time.Parse("2006-01-02 15:04:05.999999999", data["UtcTime"])
	if err != nil {
		return creation{}, fmt.Errorf("reading UtcTime %q: %w", data["UtcTime"], err)
	}
	return creation{pid: pid, ppid: ppid, path: data["Image"], cmdline: data["CommandLine"], username: data["User"], at: at}, nil
}
