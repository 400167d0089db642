package telemetry

import (
	"strconv"
	"strings"
)

// nxlogHeaderKeys are the keys of NXLog's im_msvistalog module and of the
// Logstash pipeline behind it. They describe the event or its transport,
// not its EventData, so they stay out of windows_events.data.
// EventTypeOrignal [sic] is NXLog's EventType, renamed by the OTRF pipeline
// where Sysmon's own EventType field would have clashed with it.
var nxlogHeaderKeys = map[string]bool{
	"@timestamp": true, "@version": true, "AccountName": true, "AccountType": true,
	"ActivityID": true, "Category": true, "Channel": true, "Domain": true,
	"ERROR_EVT_UNRESOLVED": true, "EventID": true, "EventReceivedTime": true,
	"EventTime": true, "EventType": true, "EventTypeOrignal": true,
	"ExecutionProcessID": true, "Hostname": true, "Keywords": true, "Message": true,
	"Opcode": true, "OpcodeValue": true, "ProviderGuid": true, "RecordNumber": true,
	"RelatedActivityID": true, "Severity": true, "SeverityValue": true,
	"SourceModuleName": true, "SourceModuleType": true, "SourceName": true,
	"Task": true, "ThreadID": true, "UserID": true, "Version": true,
	"host": true, "port": true, "tags": true,
}

// sysmonProvider is the provider whose UtcTime field is the event's time in
// UTC, which teaches the offset of a host's zone-less EventTime.
const sysmonProvider = "Microsoft-Windows-Sysmon"

// decodeNXLog reads one NXLog im_msvistalog object. EventTime and
// EventReceivedTime are the local time of the machine that ran NXLog, with
// whole seconds and no zone (unless the NXLog configuration added one).
func decodeNXLog(obj object) (winEvent, string) {
	var ev winEvent
	var eventType, eventTypeOriginal, severityValue string

	for _, m := range obj {
		if !nxlogHeaderKeys[m.name] {
			ev.data = append(ev.data, dataField{name: m.name, value: valueText(m.value)})
			continue
		}
		if isNull(m.value) {
			continue
		}

		switch m.name {
		case "Channel":
			ev.channel = valueText(m.value)
		case "EventID":
			ev.eventID = valueText(m.value)
		case "Hostname":
			ev.computer = valueText(m.value)
		case "SourceName":
			ev.provider = valueText(m.value)
		case "ProviderGuid":
			ev.providerGUID = valueText(m.value)
		case "Task":
			ev.task = valueText(m.value)
		case "Keywords":
			ev.keywords = keywordsHex(valueText(m.value))
		case "EventTime":
			ev.created = localOrZoned(valueText(m.value))
		case "EventReceivedTime":
			ev.received = localOrZoned(valueText(m.value))
		case "EventType":
			eventType = valueText(m.value)
		case "EventTypeOrignal":
			eventTypeOriginal = valueText(m.value)
		case "SeverityValue":
			severityValue = valueText(m.value)
		}
	}

	if reason := checkEvent(&ev); reason != "" {
		return winEvent{}, reason
	}

	if eventType == "" {
		eventType = eventTypeOriginal
	}
	ev.level = nxlogLevel(eventType, severityValue)

	if ev.provider == sysmonProvider && ev.created.local {
		if utc, ok := obj.text("UtcTime"); ok {
			if t, fraction, _, ok := parseTimestamp(utc); ok {
				ev.utcHint = utcStamp(t, fraction)
			}
		}
	}
	return ev, ""
}

// checkEvent returns the reason to skip an event that lacks a column osquery
// requires (osquery itself rejects events without these).
func checkEvent(ev *winEvent) string {
	switch {
	case !isEventID(ev.eventID):
		return SkipMissingEventID
	case ev.channel == "":
		return SkipMissingChannel
	case !ev.created.set:
		return SkipMissingTime
	case ev.computer == "":
		return SkipMissingComputer
	case ev.provider == "":
		return SkipMissingProvider
	}
	return ""
}

func isEventID(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n <= 65535
}

// localOrZoned parses an NXLog time: zone-less text is the NXLog machine's
// local time; text with a zone is converted to UTC.
func localOrZoned(value string) stamp {
	t, fraction, zoned, ok := parseTimestamp(value)
	if !ok {
		return stamp{}
	}
	return stamp{wall: t, local: !zoned, fraction: fraction, set: true}
}

// keywordsHex renders a keywords mask as Windows writes it in the event XML
// ("0x8020000000000000"). NXLog writes the mask as a signed 64-bit decimal.
func keywordsHex(value string) string {
	if strings.HasPrefix(value, "0x") || strings.HasPrefix(value, "0X") {
		return value
	}
	if n, err := strconv.ParseInt(value, 10, 64); err == nil {
		return "0x" + strconv.FormatUint(uint64(n), 16)
	}
	if n, err := strconv.ParseUint(value, 10, 64); err == nil {
		return "0x" + strconv.FormatUint(n, 16)
	}
	return value
}

// nxlogLevel recovers the event's Level, which NXLog replaces with its own
// EventType and SeverityValue. Audit events (AUDIT_SUCCESS, AUDIT_FAILURE)
// are written by the Security log with Level 0; the other types map back to
// Levels 1 to 5. NOTE: a non-audit event logged with Level 0 reads as 4,
// because NXLog reports both as INFO.
func nxlogLevel(eventType, severityValue string) string {
	switch strings.ToUpper(eventType) {
	case "AUDIT_SUCCESS", "AUDIT_FAILURE":
		return "0"
	case "CRITICAL":
		return "1"
	case "ERROR":
		return "2"
	case "WARNING":
		return "3"
	case "INFO":
		return "4"
	case "VERBOSE":
		return "5"
	}

	// NXLog's SeverityValue runs the other way: 5 is critical, 1 is debug.
	switch severityValue {
	case "5":
		return "1"
	case "4":
		return "2"
	case "3":
		return "3"
	case "2":
		return "4"
	case "1":
		return "5"
	}
	return ""
}
