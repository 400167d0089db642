package sourcehealth

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/sources"
)

// Statuses of a source, from the most to the least severe cause.
const (
	// StatusMissing: osquery has no such table (platform or version).
	StatusMissing = "missing"
	// StatusDisabled: the table exists but a flag or osquery_events shows
	// its events turned off.
	StatusDisabled = "disabled"
	// StatusError: counting or reading the events failed, or the source
	// shows a known defect.
	StatusError = "error"
	// StatusEmpty: the source is on, but at least one kind of event it
	// reads did not occur within the lookback.
	StatusEmpty = "empty"
	// StatusOK: every kind of event the source reads occurred within the
	// lookback.
	StatusOK = "ok"
)

// Evidence is the collected facts about one source.
type Evidence struct {
	Availability Availability
	// Counts holds the source's events within Lookback, nil when they
	// were not counted.
	Counts *Counts
	// CountErr is the error of the count query.
	CountErr error
	// Lookback is the span the counts cover.
	Lookback time.Duration
	// Last is the detection's last read of the source, valid when HasLast.
	Last    Read
	HasLast bool
	// Recorded marks counts taken over recorded telemetry loaded for a
	// replay (svclaunch hunt and query) rather than over a live host. A
	// missing kind of event then means the recording lacks it, so hints
	// name the recording instead of a host's configuration.
	Recorded bool
}

// Report is one source's state as remote_service_launch_sources shows it.
type Report struct {
	Availability Availability
	// Events is the number of events the detection reads within the
	// lookback, or NotCounted.
	Events int64
	// NewestEventTime is the `time` of the newest counted event, 0 when
	// none.
	NewestEventTime int64
	// Last and HasLast are the evidence's last read.
	Last    Read
	HasLast bool
	// LastError is the count query's error, else the last read's.
	LastError string
	Status    string
	Hint      string
	// MissingRoles are the roles whose events did not occur within the
	// lookback. They make the status empty unless Reconcile finds them
	// covered by another source.
	MissingRoles Role
}

// Evaluate derives a source's status and hint. The first matching rule
// decides the status:
//  1. missing: osquery_registry does not list the table;
//  2. disabled: a flag, the channel list or osquery_events shows the
//     source off;
//  3. error: the count query failed, the detection's last read failed, or
//     process_etw_events has ProcessStop events but no ProcessStart;
//  4. empty: a kind of event the source reads did not occur within the
//     lookback, for example Security 4688 without 5156;
//  5. ok.
//
// An ok source may still carry a hint: Security 4688 events without a
// command line, no Sysmon connection of services.exe, a read that hit the
// row cap or rows that were skipped. Reconcile then weighs the sources of
// one host against each other.
func Evaluate(e Evidence) Report {
	a := e.Availability
	r := Report{Availability: a, Events: NotCounted, Last: e.Last, HasLast: e.HasLast}
	if e.Counts != nil {
		r.Events = usedEvents(a.Source, *e.Counts)
		r.NewestEventTime = e.Counts.Newest
	}
	if e.HasLast {
		r.LastError = e.Last.Err
	}

	switch {
	case a.Missing():
		r.Status, r.Hint = StatusMissing, a.Hint
	case a.Disabled:
		r.Status, r.Hint = StatusDisabled, a.Hint
	case e.CountErr != nil:
		r.LastError = e.CountErr.Error()
		r.Status = StatusError
		r.Hint = fmt.Sprintf("counting the events in %s failed (see last_error): check that osqueryd answers queries on this table", a.Table)
	case e.HasLast && e.Last.Err != "":
		r.Status = StatusError
		r.Hint = fmt.Sprintf("the last read of %s by remote_service_launches failed (see last_error)", a.Table)
	case e.Counts == nil:
		// Nothing was counted, so nothing speaks against the source.
		r.Status = StatusOK
	default:
		within := "in the last " + strconv.FormatInt(int64(e.Lookback/time.Second), 10) + " s"
		if e.Recorded {
			within = "in the loaded telemetry"
		}
		r.Status, r.Hint, r.MissingRoles = judgeCounts(a.Source, *e.Counts, within)
		if e.Recorded && r.Status == StatusEmpty {
			r.Hint = recordedHint(a, *e.Counts)
		}
	}

	if r.Status == StatusOK && r.Hint == "" && e.HasLast {
		r.Hint = readHint(e.Last)
	}
	return r
}

// usedEvents returns the number of counted events of the kinds the
// detection reads.
func usedEvents(source string, c Counts) int64 {
	switch source {
	case detect.SourceETW:
		return c.Kind(sources.ETWProcessStart)
	case detect.SourceSocketEvents:
		return c.Kind("accept")
	}
	return c.Total()
}

// Fixes named in hints.
const (
	auditProcessCreation = `auditpol /set /subcategory:"Process Creation" /success:enable`
	auditWFPConnection   = `auditpol /set /subcategory:"Filtering Platform Connection" /success:enable`
	cmdlinePolicy        = "turn on the ProcessCreationIncludeCmdLine_Enabled policy " +
		`(Administrative Templates\System\Audit Process Creation\Include command line in process creation events)`
)

// judgeCounts returns the status, hint and missing roles of an enabled
// source from its event counts; within names the span of the counts.
func judgeCounts(source string, c Counts, within string) (string, string, Role) {
	status, hint := judgeKinds(source, c, within)
	if status != StatusEmpty {
		return status, hint, 0
	}

	// Which roles lack events follows from the kinds that were counted.
	var missing Role
	switch source {
	case detect.SourceSysmon:
		missing = zeroRole(c.Kind("1"), RoleProcessStarts) | zeroRole(c.Kind("3"), RoleConnections)
	case detect.SourceSecurity:
		missing = zeroRole(c.Kind("4688"), RoleProcessStarts) | zeroRole(c.Kind("5156"), RoleConnections)
	default:
		missing = RolesOf(source)
	}
	return status, hint, missing
}

// zeroRole returns role when count is zero.
func zeroRole(count int64, role Role) Role {
	if count == 0 {
		return role
	}
	return 0
}

// judgeKinds returns the status and hint of an enabled source from its
// event counts; within names the lookback in hints.
func judgeKinds(source string, c Counts, within string) (string, string) {

	switch source {
	case detect.SourceSysmon:
		starts, conns := c.Kind("1"), c.Kind("3")
		switch {
		case starts == 0 && conns == 0:
			return StatusEmpty, "no Sysmon event 1 or 3 " + within + ": install Sysmon with a configuration that " +
				"logs ProcessCreate and the NetworkConnect events of services.exe (sysmon64 -accepteula -i config.xml)"
		case starts == 0:
			return StatusEmpty, "no Sysmon event 1 " + within + ": the Sysmon configuration does not log process " +
				"creation; add a ProcessCreate rule and load it with sysmon64 -c config.xml"
		case conns == 0:
			return StatusEmpty, "Sysmon logs process creation but no network connection " + within + ": the Sysmon " +
				`configuration does not log services.exe network connections; add a NetworkConnect rule that includes Image ending in \services.exe`
		case c.ParentConnections == 0:
			return StatusOK, "no Sysmon event 3 of services.exe " + within + ", which is normal while nobody " +
				"controls services remotely; if the Sysmon configuration filters NetworkConnect by image, it does not log " +
				`services.exe network connections: include Image ending in \services.exe`
		}
	case detect.SourceSecurity:
		starts, conns := c.Kind("4688"), c.Kind("5156")
		switch {
		case starts == 0 && conns == 0:
			return StatusEmpty, "no Security event 4688 or 5156 " + within + ": run " + auditProcessCreation +
				" and " + auditWFPConnection + ", and " + cmdlinePolicy
		case starts == 0:
			return StatusEmpty, "no Security event 4688 " + within + ": run " + auditProcessCreation + " and " + cmdlinePolicy
		case conns == 0:
			return StatusEmpty, "no Security event 5156 " + within + ": run " + auditWFPConnection
		case c.WithoutCmdline > 0:
			return StatusOK, fmt.Sprintf("%d of %d events 4688 have no command line: %s", c.WithoutCmdline, starts, cmdlinePolicy)
		}
	case detect.SourceETW:
		starts, stops := c.Kind(sources.ETWProcessStart), c.Kind(sources.ETWProcessStop)
		switch {
		case starts == 0 && stops > 0:
			return StatusError, fmt.Sprintf("process_etw_events has %d ProcessStop events but no ProcessStart %s: "+
				"a known osquery defect on Windows 11 24H2 (build 26100), where osqueryd logs \"ControlTrace() failed "+
				"with error code 234\"; read process starts from Sysmon event 1 or Security event 4688 instead", stops, within)
		case starts == 0:
			return StatusEmpty, "no ProcessStart event " + within + " although the table is enabled: check osqueryd's " +
				"log for ETW session errors"
		}
	case detect.SourceProcessEvents:
		if c.Total() == 0 {
			return StatusEmpty, "no process_events row " + within + ": check osqueryd's log; on Linux auditd must not " +
				"hold the audit socket and --audit_allow_process_events must be true"
		}
	case detect.SourceSocketEvents:
		accepts := c.Kind("accept")
		switch {
		case accepts == 0 && c.Total() > 0:
			return StatusEmpty, "socket_events has rows but no accept " + within + ": set --audit_allow_accept_socket_events=true"
		case accepts == 0:
			return StatusEmpty, "no socket_events row " + within + ": set --audit_allow_sockets=true; on Linux auditd " +
				"must not hold the audit socket"
		}
	}
	return StatusOK, ""
}

// recordedHint describes an empty source of recorded telemetry: the kinds
// of events the recording lacks. The host fixes of judgeKinds do not apply,
// because the recording cannot change.
func recordedHint(a Availability, c Counts) string {
	var missing []string
	switch a.Source {
	case detect.SourceSysmon:
		missing = missingKinds(c, "1", "3")
		return "the loaded telemetry holds no Sysmon event " + strings.Join(missing, " or ")
	case detect.SourceSecurity:
		missing = missingKinds(c, "4688", "5156")
		return "the loaded telemetry holds no Security event " + strings.Join(missing, " or ")
	case detect.SourceETW:
		if c.Total() > 0 {
			return "the loaded telemetry holds process_etw_events rows but no " + sources.ETWProcessStart
		}
	case detect.SourceSocketEvents:
		if c.Total() > 0 {
			return "the loaded telemetry holds socket_events rows but no accept"
		}
	}
	return "the loaded telemetry holds no " + a.Table + " rows"
}

// missingKinds returns the kinds among kinds that c did not count.
func missingKinds(c Counts, kinds ...string) []string {
	var missing []string
	for _, kind := range kinds {
		if c.Kind(kind) == 0 {
			missing = append(missing, kind)
		}
	}
	return missing
}

// readHint describes a problem of the detection's last read, or returns "".
func readHint(last Read) string {
	switch {
	case last.RowCap > 0:
		return fmt.Sprintf("the last read by remote_service_launches stopped at its cap of %d rows, so older events "+
			"were not read: constrain time in the query", last.RowCap)
	case last.SkippedTotal() > 0:
		return fmt.Sprintf("%d of %d rows in the last read were skipped, most as %s", last.SkippedTotal(), last.Rows, last.MainSkipReason())
	}
	return ""
}

// Reconcile revises the reports of one host together. A source that is
// empty only because one kind of its events is missing, while another
// source that is ok provides that role, is ok, because the detection does
// not need the missing events from it. Its hint keeps the fix and names
// the source that covers the role. Security without events 4688 next to
// ETW process starts is the usual case.
func Reconcile(reports []Report) {
	var covered Role
	for _, r := range reports {
		if r.Status == StatusOK {
			covered |= r.Availability.Roles
		}
	}

	for i := range reports {
		r := &reports[i]
		if r.Status != StatusEmpty || r.MissingRoles == 0 || r.MissingRoles == r.Availability.Roles {
			continue
		}
		if r.MissingRoles&covered != r.MissingRoles {
			continue
		}
		r.Hint = coveringSources(reports, r.MissingRoles) + ", so this is optional: " + r.Hint
		r.Status = StatusOK
	}
}

// coveringSources names the ok sources that provide role, leaving out
// those Reconcile made ok although they lack it.
func coveringSources(reports []Report, role Role) string {
	var names []string
	for _, r := range reports {
		if r.Status == StatusOK && r.Availability.Roles&role != 0 && r.MissingRoles&role == 0 {
			names = append(names, r.Availability.Source)
		}
	}
	what := "process starts"
	if role == RoleConnections {
		what = "inbound connections"
	}
	verb := " provides the "
	if len(names) > 1 {
		verb = " provide the "
	}
	return strings.Join(names, " and ") + verb + what
}
