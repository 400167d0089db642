package telemetry

import "strings"

// pythonEvtxHeaderKeys are the System fields that the python-evtx JSON-lines
// layout writes beside the EventData fields.
var pythonEvtxHeaderKeys = map[string]bool{
	"ActivityID": true, "Channel": true, "Computer": true, "EventID": true,
	"EventRecordID": true, "ExecutionProcessID": true, "ExecutionThreadID": true,
	"Keywords": true, "Level": true, "Opcode": true, "ProviderGuid": true,
	"ProviderName": true, "Qualifiers": true, "RelatedActivityID": true,
	"SecurityUserID": true, "Task": true, "TimeCreated": true, "Version": true,
}

// decodePythonEvtx reads one python-evtx object. TimeCreated is the event's
// SystemTime in UTC, written by Python's datetime with microseconds (and
// without them when they are zero), so it always counts as sub-second.
func decodePythonEvtx(obj object) (winEvent, string) {
	var ev winEvent

	for _, m := range obj {
		if !pythonEvtxHeaderKeys[m.name] {
			ev.data = append(ev.data, dataField{name: m.name, value: pythonEvtxValue(valueText(m.value))})
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
		case "Computer":
			ev.computer = valueText(m.value)
		case "ProviderName":
			ev.provider = valueText(m.value)
		case "ProviderGuid":
			ev.providerGUID = valueText(m.value)
		case "Task":
			ev.task = valueText(m.value)
		case "Level":
			ev.level = valueText(m.value)
		case "Keywords":
			ev.keywords = valueText(m.value)
		case "TimeCreated":
			if t, _, _, ok := parseTimestamp(valueText(m.value)); ok {
				ev.created = utcStamp(t, true)
			}
		}
	}

	if reason := checkEvent(&ev); reason != "" {
		return winEvent{}, reason
	}
	return ev, ""
}

// pythonEvtxValue converts python-evtx's text for typed values back to the
// text Windows writes in the event XML, which is what osquery stores.
// python-evtx writes booleans as "True" and "False", and HexInt32 and
// HexInt64 values zero-padded to 8 or 16 digits ("0x00000000000003e7"),
// where Windows writes "true", "false" and "0x3e7".
// NOTE: the layout keeps no types, so a string value whose whole text has one
// of these forms is converted too.
func pythonEvtxValue(s string) string {
	switch s {
	case "True":
		return "true"
	case "False":
		return "false"
	}

	if (len(s) == 10 || len(s) == 18) && s[0] == '0' && s[1] == 'x' && isLowerHex(s[2:]) {
		digits := strings.TrimLeft(s[2:], "0")
		if digits == "" {
			digits = "0"
		}
		return "0x" + digits
	}
	return s
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
