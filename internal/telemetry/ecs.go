package telemetry

import (
	"encoding/json"
	"strconv"
	"strings"
)

// decodeECS reads one Winlogbeat or Elastic Agent document in the Elastic
// Common Schema, with nested objects ({"winlog":{"event_id":...}}), dotted
// keys ({"winlog.event_id":...}) or a mix, optionally wrapped in an
// Elasticsearch "_source". @timestamp is the event's TimeCreated in UTC;
// event.created (else event.ingested) is when the shipper read it.
//
// NOTE: ECS keeps task and keywords only as display names, so those columns
// stay empty unless the document has them as numbers.
func decodeECS(obj object) (winEvent, string) {
	if src, ok := obj.child("_source"); ok {
		obj = src
	}

	var ev winEvent
	ev.eventID = firstText(obj, "winlog.event_id", "event.code")
	ev.channel = firstText(obj, "winlog.channel")
	ev.provider = firstText(obj, "winlog.provider_name", "event.provider")
	ev.providerGUID = firstText(obj, "winlog.provider_guid")
	ev.computer = firstText(obj, "winlog.computer_name", "host.name", "host.hostname")

	if task := firstText(obj, "winlog.task"); isUnsigned(task) {
		ev.task = task
	}
	if keywords := firstText(obj, "winlog.keywords"); isUnsigned(keywords) || strings.HasPrefix(keywords, "0x") {
		ev.keywords = keywordsHex(keywords)
	}
	ev.level = ecsLevel(obj)

	if t, fraction, zoned, ok := parseTimestamp(firstText(obj, "@timestamp")); ok && zoned {
		ev.created = utcStamp(t, fraction)
	}
	if t, fraction, zoned, ok := parseTimestamp(firstText(obj, "event.created", "event.ingested")); ok && zoned {
		ev.received = utcStamp(t, fraction)
	}

	if reason := checkEvent(&ev); reason != "" {
		return winEvent{}, reason
	}

	ev.data = ecsData(obj, "winlog.event_data")
	if ev.data == nil {
		if data := ecsData(obj, "winlog.user_data"); data != nil {
			ev.data, ev.userData = data, true
		}
	}
	return ev, ""
}

// ecsLevel returns the event's Level: winlog.level when it is a number,
// else log.level's name mapped back to its number. Audit events, whose
// keywords contain "Audit Success" or "Audit Failure", have Level 0.
func ecsLevel(obj object) string {
	if level := firstText(obj, "winlog.level"); isUnsigned(level) {
		return level
	}

	keywords := firstText(obj, "winlog.keywords")
	if strings.Contains(keywords, "Audit Success") || strings.Contains(keywords, "Audit Failure") {
		return "0"
	}

	switch strings.ToLower(firstText(obj, "log.level")) {
	case "critical":
		return "1"
	case "error":
		return "2"
	case "warning":
		return "3"
	case "information", "info":
		return "4"
	case "verbose":
		return "5"
	}
	return ""
}

// ecsData returns the members of the object at path, either nested or as
// dotted top-level keys ("winlog.event_data.Image"), or nil when there are
// none.
func ecsData(obj object, path string) []dataField {
	var out []dataField
	if raw, ok := lookupPath(obj, path); ok && len(raw) > 0 && raw[0] == '{' {
		if data, err := decodeObject(raw); err == nil {
			for _, m := range data {
				out = append(out, dataField{name: m.name, value: valueText(m.value)})
			}
		}
	}

	prefix := path + "."
	for _, m := range obj {
		if name, ok := strings.CutPrefix(m.name, prefix); ok {
			out = append(out, dataField{name: name, value: valueText(m.value)})
		}
	}
	return out
}

// firstText returns the text of the first path that exists with a value.
func firstText(obj object, paths ...string) string {
	for _, path := range paths {
		if raw, ok := lookupPath(obj, path); ok && !isNull(raw) {
			return valueText(raw)
		}
	}
	return ""
}

// lookupPath finds a dotted path in nested objects, dotted keys or a mix of
// the two ({"winlog":{"event_data.Image":...}} included).
func lookupPath(obj object, path string) (json.RawMessage, bool) {
	if raw, ok := obj.get(path); ok {
		return raw, true
	}

	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		if child, ok := obj.child(path[:i]); ok {
			if raw, ok := lookupPath(child, path[i+1:]); ok {
				return raw, true
			}
		}
	}
	return nil, false
}

func isUnsigned(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
