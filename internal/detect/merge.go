package detect

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MergeSlack is the largest gap between the times of two records that are
// merged into one event. Sources disagree by seconds on the time of one
// event: Security events stamp when the audit record was written and, in
// some exports, carry only whole seconds of local time, while Sysmon stamps
// the event itself in milliseconds. The slack is only for merging; the
// detection window is applied to the merged records.
const MergeSlack = 5 * time.Second

// mergeLookback is how many earlier clusters of one key a record is tried
// against. Sources report an event once each, so a handful suffices, and the
// bound keeps a run of many records with one key linear.
const mergeLookback = 8

// MergeProcesses returns one record per process. Records from different
// sources merge when they share the host and pid, or, when one of them lacks
// the pid, the host, parent pid, image base name (ignoring case) and command
// line. In both cases their times must lie within MergeSlack, their parent
// pids must agree where both are known, and their instance keys must agree
// where both have a key of one kind. Two records from one source merge only
// when they are exact duplicates (every field equal, whether or not the pid
// is known) or share a known pid and the time. The merged record lists the
// union of the sources, takes the time of the finest resolution, fills
// every empty field from the other records and keeps one instance key of
// each kind. The input is not modified; the result keeps the input order of
// each process's first record.
func MergeProcesses(procs []ProcessStart) []ProcessStart {
	return mergeProcesses(procs, allIndices(len(procs)), &keySorter{}).records()
}

// MergeConnections returns one record per connection. Records merge when
// they share the host, protocol (ignoring case), both addresses (compared as
// parsed IP addresses, so `fe80:0:0:0::1` equals `fe80::1`), both ports and
// the direction, their pids are equal or one is unknown, and their times lie
// within MergeSlack. Two records from one source merge only when their times
// are equal. Sources, time and empty fields are merged as in
// MergeProcesses, and the input is not modified.
func MergeConnections(conns []Connection) []Connection {
	keys := make([]groupKey, len(conns))
	var coarsest int64
	for i := range conns {
		remote, parsed := parseAddr(conns[i].RemoteAddress)
		keys[i] = connectionMergeKey(&conns[i], int32(i), remote, parsed)
		coarsest = max(coarsest, resolution(conns[i].Time))
	}
	return mergeConnections(conns, allIndices(len(conns)), keys, coarsest, &keySorter{}).records()
}

// mergeProcesses merges the input records listed, ascending, in candidates.
func mergeProcesses(input []ProcessStart, candidates []int32, sorter *keySorter) *mergeSet[ProcessStart] {
	set := newMergeSet(input, candidates)
	var arena sourceArena
	joiner := func(sameKey func(a, b *ProcessStart) bool) func(cluster, ref int32) (int32, bool) {
		return func(cluster, ref int32) (int32, bool) {
			a, b := set.at(cluster), set.at(ref)
			if !sameKey(a, b) || !canMergeProcesses(a, b) {
				return 0, false
			}
			aFirst := set.firstIndex(cluster) < set.firstIndex(ref)
			return set.join(cluster, ref, mergedProcess(a, b, aFirst, &arena)), true
		}
	}

	// Pass one: records that share a host and pid.
	keys := make([]groupKey, 0, len(candidates))
	unknownPIDs := 0
	var coarsest int64
	for _, i := range candidates {
		p := &input[i]
		coarsest = max(coarsest, resolution(p.Time))
		if p.PID == UnknownPID {
			unknownPIDs++
			continue
		}
		keys = append(keys, groupKey{fingerprint: pidFingerprint(p.Host, p.PID), time: p.Time.UnixNano, i: i})
	}
	reach := int64(MergeSlack) + coarsest
	sorter.sort(keys)
	keys = dropDuplicates(set, keys, sameProcessRecord)
	open := clusterRuns(keys, reach, nil, joiner(func(a, b *ProcessStart) bool {
		return a.Host == b.Host && a.PID == b.PID
	}))
	set.compact()
	if unknownPIDs == 0 {
		return set
	}

	// Pass two: a record without a pid joins the record of the same parent,
	// image and command line, which is how a missing pid is recovered. Only
	// groups that hold a record without a pid need sorting; the filter
	// drops almost all others.
	keys = keys[:0]
	filter := newFingerprintFilter(unknownPIDs)
	for _, i := range set.firsts {
		ref := set.refAt(i)
		p := set.at(ref)
		fingerprint := imageFingerprint(p)
		if p.PID == UnknownPID {
			filter.add(fingerprint)
		}
		keys = append(keys, groupKey{fingerprint: fingerprint, time: p.Time.UnixNano, i: ref})
	}
	keys = slices.DeleteFunc(keys, func(k groupKey) bool { return !filter.has(k.fingerprint) })
	sorter.sort(keys)
	keys = dropDuplicates(set, keys, sameProcessRecord)
	clusterRuns(keys, reach, open, joiner(func(a, b *ProcessStart) bool {
		return a.Host == b.Host && a.ParentPID == b.ParentPID &&
			strings.EqualFold(baseName(a.Path), baseName(b.Path)) && a.Cmdline == b.Cmdline
	}))
	set.compact()
	return set
}

// sameProcessRecord reports whether two records are equal in every field.
func sameProcessRecord(a, b *ProcessStart) bool {
	return a.Time == b.Time && a.PID == b.PID && a.ParentPID == b.ParentPID && a.HeaderPID == b.HeaderPID &&
		a.Host == b.Host && a.Instance == b.Instance && a.ParentInstance == b.ParentInstance &&
		a.Path == b.Path && a.ParentPath == b.ParentPath && a.Cmdline == b.Cmdline && a.Username == b.Username &&
		slices.Equal(a.Sources, b.Sources)
}

// imageFingerprint groups processes by host, parent pid, image base name
// (ignoring ASCII case) and command line.
func imageFingerprint(p *ProcessStart) uint64 {
	fingerprint := pidFingerprint(p.Host, p.ParentPID)
	fingerprint = mix(fingerprint, hashFoldASCII(baseName(p.Path)))
	return mix(fingerprint, hashString(p.Cmdline))
}

// canMergeProcesses reports whether two records, already found to share a
// key, can describe one process.
func canMergeProcesses(a, b *ProcessStart) bool {
	if !pidsAgree(a.PID, b.PID) || !pidsAgree(a.ParentPID, b.ParentPID) {
		return false
	}
	if !withinSlack(a.Time, b.Time) {
		return false
	}

	// Instance keys of one kind that differ name two processes. Keys of
	// different kinds, such as a Sysmon ProcessGuid and an ETW sequence
	// number, are not compared.
	if instancesConflict(a.Instance, b.Instance) || instancesConflict(a.ParentInstance, b.ParentInstance) {
		return false
	}

	// A source reports a process once, so two of its records are two
	// processes, unless they are the same record delivered twice. Exact
	// duplicates are dropped before clustering, so this check adds only
	// records of one known pid and time that differ in another field.
	if sharesSource(a.Sources, b.Sources) {
		return a.Time == b.Time && a.PID != UnknownPID && a.PID == b.PID
	}
	return true
}

// mergedProcess returns one record built from a and b. The record with the
// finer time is the base, and the other fills its empty fields. aFirst
// breaks ties, so the result does not depend on the sort order.
func mergedProcess(a, b *ProcessStart, aFirst bool, arena *sourceArena) ProcessStart {
	if !finerTime(a.Time, b.Time, aFirst) {
		a, b = b, a
	}

	merged := *a
	merged.Sources = arena.union(a.Sources, b.Sources)
	fillPID(&merged.PID, b.PID)
	fillPID(&merged.ParentPID, b.ParentPID)
	merged.Instance = joinInstances(merged.Instance, b.Instance)
	merged.ParentInstance = joinInstances(merged.ParentInstance, b.ParentInstance)
	fillHeaderPID(&merged.HeaderPID, b.HeaderPID)
	fillString(&merged.ParentPath, b.ParentPath)
	fillString(&merged.Path, b.Path)
	fillString(&merged.Cmdline, b.Cmdline)
	fillString(&merged.Username, b.Username)
	return merged
}

// connectionMergeKey returns the merge key of connection i, grouping by
// host, remote address and both ports. These separate connections well
// enough; sameEndpoints compares the protocol and the local address, which
// saves parsing one address per record here. The caller passes the remote
// address parsed, because it has parsed it already.
func connectionMergeKey(c *Connection, i int32, remote netip.Addr, remoteParsed bool) groupKey {
	fingerprint := mixAddr(hashString(c.Host), remote, remoteParsed, c.RemoteAddress)
	fingerprint = mix(fingerprint, uint64(c.RemotePort)<<32|uint64(uint32(c.LocalPort)))
	return groupKey{fingerprint: fingerprint, time: c.Time.UnixNano, i: i}
}

// mergeConnections merges the input records listed, ascending, in
// candidates, given their merge keys in any order and the coarsest time
// resolution among them.
func mergeConnections(input []Connection, candidates []int32, keys []groupKey, coarsest int64, sorter *keySorter) *mergeSet[Connection] {
	set := newMergeSet(input, candidates)
	var arena sourceArena
	sorter.sort(keys)
	keys = dropDuplicates(set, keys, sameConnectionRecord)
	clusterRuns(keys, int64(MergeSlack)+coarsest, nil, func(cluster, ref int32) (int32, bool) {
		a, b := set.at(cluster), set.at(ref)
		if !sameEndpoints(a, b) || !canMergeConnections(a, b) {
			return 0, false
		}
		aFirst := set.firstIndex(cluster) < set.firstIndex(ref)
		return set.join(cluster, ref, mergedConnection(a, b, aFirst, &arena)), true
	})
	set.compact()
	return set
}

// sameConnectionRecord reports whether two records are equal in every field.
func sameConnectionRecord(a, b *Connection) bool {
	return a.Time == b.Time && a.PID == b.PID && a.Inbound == b.Inbound &&
		a.LocalPort == b.LocalPort && a.RemotePort == b.RemotePort && a.Host == b.Host &&
		a.Instance == b.Instance && a.Path == b.Path && a.Protocol == b.Protocol &&
		a.LocalAddress == b.LocalAddress && a.RemoteAddress == b.RemoteAddress &&
		slices.Equal(a.Sources, b.Sources)
}

// sameEndpoints reports whether two connections have the same host,
// protocol, addresses and ports. It confirms a fingerprint match.
func sameEndpoints(a, b *Connection) bool {
	return a.Host == b.Host && a.RemotePort == b.RemotePort && a.LocalPort == b.LocalPort &&
		strings.EqualFold(a.Protocol, b.Protocol) &&
		sameAddr(a.RemoteAddress, b.RemoteAddress) && sameAddr(a.LocalAddress, b.LocalAddress)
}

// sameAddr reports whether two address spellings name the same address.
// Spellings that do not parse are equal only as text.
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	x, okA := parseAddr(a)
	y, okB := parseAddr(b)
	return okA && okB && x == y
}

// canMergeConnections reports whether two records with the same endpoints
// can describe one connection.
func canMergeConnections(a, b *Connection) bool {
	if !pidsAgree(a.PID, b.PID) || a.Inbound != b.Inbound {
		return false
	}
	if !withinSlack(a.Time, b.Time) {
		return false
	}
	if sharesSource(a.Sources, b.Sources) {
		return a.Time == b.Time
	}
	return true
}

// mergedConnection returns one record built from a and b, as mergedProcess
// does for processes.
func mergedConnection(a, b *Connection, aFirst bool, arena *sourceArena) Connection {
	if !finerTime(a.Time, b.Time, aFirst) {
		a, b = b, a
	}

	merged := *a
	merged.Sources = arena.union(a.Sources, b.Sources)
	fillPID(&merged.PID, b.PID)
	merged.Instance = joinInstances(merged.Instance, b.Instance)
	fillString(&merged.Path, b.Path)
	fillString(&merged.Protocol, b.Protocol)
	fillString(&merged.LocalAddress, b.LocalAddress)
	fillString(&merged.RemoteAddress, b.RemoteAddress)
	return merged
}

// pidsAgree reports whether two process ids can name the same process: equal,
// or at least one unknown.
func pidsAgree(a, b int64) bool {
	return a == b || a == UnknownPID || b == UnknownPID
}

// withinSlack reports whether the gap between the two timestamps' intervals
// is at most MergeSlack.
func withinSlack(a, b Timestamp) bool {
	gap := max(b.UnixNano-(a.UnixNano+resolution(a)), a.UnixNano-(b.UnixNano+resolution(b)), 0)
	return gap <= int64(MergeSlack)
}

// finerTime reports whether a's time should be kept over b's: the finer
// resolution wins, then the earlier start, then aFirst.
func finerTime(a, b Timestamp, aFirst bool) bool {
	if ra, rb := resolution(a), resolution(b); ra != rb {
		return ra < rb
	}
	if a.UnixNano != b.UnixNano {
		return a.UnixNano < b.UnixNano
	}
	return aFirst
}

func fillPID(dst *int64, src int64) {
	if *dst == UnknownPID {
		*dst = src
	}
}

// fillHeaderPID fills a HeaderPID, whose unknown value is 0.
func fillHeaderPID(dst *int64, src int64) {
	if *dst == 0 {
		*dst = src
	}
}

func fillString(dst *string, src string) {
	if *dst == "" {
		*dst = src
	}
}

// sharesSource reports whether two short source lists have a name in
// common.
func sharesSource(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// sourceArena allocates merged source lists from shared chunks, so that
// merging does not allocate once per record.
type sourceArena struct {
	buf []string
}

// union returns the sorted, deduplicated union of a and b without modifying
// either, which may share arrays with the caller's input.
func (arena *sourceArena) union(a, b []string) []string {
	if slices.Equal(a, b) {
		return a
	}

	// Lists already handed out keep their chunk; a full chunk is left to
	// them and a new one started.
	if need := len(a) + len(b); cap(arena.buf)-len(arena.buf) < need {
		arena.buf = make([]string, 0, max(chunkSize, need))
	}
	start := len(arena.buf)
	arena.buf = append(arena.buf, a...)
	arena.buf = append(arena.buf, b...)
	merged := arena.buf[start:]
	slices.Sort(merged)
	merged = slices.Compact(merged)
	arena.buf = arena.buf[:start+len(merged)]
	return arena.buf[start:len(arena.buf):len(arena.buf)]
}
