package detect

import "strings"

// InstanceKindETW prefixes the instance keys built from ETW process
// sequence numbers ("etw:1234"), so that they never equal a Sysmon
// ProcessGuid.
const InstanceKindETW = "etw:"

// InstanceKind returns the kind of one instance key: its text up to and
// including the first colon. A key without a colon, such as a Sysmon
// ProcessGuid ({d273d0f0-e865-5f64-0b00-000000000800}), has the empty kind.
// Keys are compared only with keys of their own kind, because each kind
// numbers process instances in its own way.
func InstanceKind(key string) string {
	if i := strings.IndexByte(key, ':'); i >= 0 {
		return key[:i+1]
	}
	return ""
}

// instancesConflict reports whether two instance key lists (see
// ProcessStart.Instance) hold keys of one kind with different values, which
// proves that they name different process instances. Lists without a kind
// in common do not conflict.
func instancesConflict(a, b string) bool {
	if a == "" || b == "" || a == b {
		return false
	}
	for x := range strings.FieldsSeq(a) {
		kind := InstanceKind(x)
		for y := range strings.FieldsSeq(b) {
			if x != y && InstanceKind(y) == kind {
				return true
			}
		}
	}
	return false
}

// firstSharedInstance returns the first key of list a that list b holds
// too, and false when they share none.
func firstSharedInstance(a, b string) (string, bool) {
	if a == "" || b == "" {
		return "", false
	}
	for x := range strings.FieldsSeq(a) {
		for y := range strings.FieldsSeq(b) {
			if x == y {
				return x, true
			}
		}
	}
	return "", false
}

// joinInstances returns the key list a extended by the keys of b whose kind
// a lacks. It allocates only when b adds a key.
func joinInstances(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" || a == b {
		return a
	}

	joined := a
	for y := range strings.FieldsSeq(b) {
		if !hasInstanceKind(joined, InstanceKind(y)) {
			joined += " " + y
		}
	}
	return joined
}

// hasInstanceKind reports whether the key list holds a key of kind.
func hasInstanceKind(keys, kind string) bool {
	for x := range strings.FieldsSeq(keys) {
		if InstanceKind(x) == kind {
			return true
		}
	}
	return false
}
