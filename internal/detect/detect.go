package detect

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Detect returns one detection per child process of the service control
// manager that started within opts.Window after an inbound, non-loopback
// connection accepted by the same parent process instance on the same host.
// It merges the records of each process and each connection first, as
// MergeProcesses and MergeConnections do, so callers may pass the events of
// several sources as they come. Records with a zero Time are ignored. The
// detections are sorted by host, child start time and child pid; the inputs
// are not modified.
//
// Matching is keyed by (host, pid, instance): the connection's pid equals the
// child's parent pid, and where both carry an instance key of one kind the
// keys are equal. When a pid is unknown on either side, a shared instance
// key is enough. Keys of different kinds (a Sysmon ProcessGuid and an ETW
// sequence number, see InstanceKind) are never compared, so an ETW start
// pairs with a Sysmon connection by pid alone. The parent's image name is
// taken from the child's ParentPath, or from the connection's Path when the
// child has none.
//
// NOTE: only the process records near a qualifying connection are merged.
// Where one record could join either of two processes (a pid reused within
// MergeSlack), it may be paired differently than MergeProcesses over all
// records would pair it.
func Detect(procs []ProcessStart, conns []Connection, opts Options) []Detection {
	var sorter keySorter
	connSet := qualifyingConnections(conns, opts, &sorter)
	if connSet == nil {
		return nil
	}
	index := indexConnections(connSet, &sorter)

	// A connection that starts at c can qualify for a child that starts at
	// p only if c > p - window - resolution(c) and c < p + resolution(p) +
	// tolerance, so the span around p uses the coarsest resolutions.
	var coarsestChild int64
	for i := range procs {
		coarsestChild = max(coarsestChild, resolution(procs[i].Time))
	}
	tolerance := max(opts.ClockTolerance, 0)
	window := span{before: int64(opts.Window) + index.coarsest, after: coarsestChild + int64(tolerance)}
	procSet := candidateProcesses(procs, index, window, coarsestChild, opts, &sorter)

	// Pair children and connections of one group in one sweep, within the
	// window's span; matcher.consider applies the exact rule.
	m := matcher{
		procs:     procSet,
		conns:     connSet,
		opts:      &opts,
		tolerance: tolerance,
		states:    make([]matchState, len(procSet.firsts)),
	}
	childrenByPID, childrenByInstance := keyChildren(procSet, index.withoutPID > 0, opts, &sorter)
	sweep(childrenByPID, index.byPID, window, m.considerByPID)
	if len(childrenByInstance) > 0 {
		sweep(childrenByInstance, index.byInstance(&sorter), window, m.considerByInstance)
	}
	return m.detections()
}

// qualifyingConnections merges the inbound connections whose remote address
// is not the host itself (unless opts.IncludeLoopback), or returns nil when
// there are none. Filtering before the merge is safe because records that
// merge share the direction and the remote address.
func qualifyingConnections(conns []Connection, opts Options, sorter *keySorter) *mergeSet[Connection] {
	hostAddresses := newHostAddressSet(opts.HostAddresses)

	// Size the lists for all inbound records, so that they never grow.
	inbound := 0
	for i := range conns {
		if conns[i].Inbound {
			inbound++
		}
	}
	candidates := make([]int32, 0, inbound)
	keys := make([]groupKey, 0, inbound)

	// Each remote address is parsed once, for the loopback test and for
	// the merge key.
	var coarsest int64
	for i := range conns {
		c := &conns[i]
		if !c.Inbound || c.Time.IsZero() {
			continue
		}
		remote, parsed := parseAddr(c.RemoteAddress)
		if !opts.IncludeLoopback && hostAddresses.isLoopback(c.Host, remote, parsed) {
			continue
		}
		candidates = append(candidates, int32(i))
		keys = append(keys, connectionMergeKey(c, int32(i), remote, parsed))
		coarsest = max(coarsest, resolution(c.Time))
	}
	if len(candidates) == 0 {
		return nil
	}
	return mergeConnections(conns, candidates, keys, coarsest, sorter)
}

// connectionIndex holds the qualifying connections keyed by (host, pid) in
// time order, and what the detection needs to know about them.
type connectionIndex struct {
	set   *mergeSet[Connection]
	byPID []groupKey
	// coarsest is the coarsest time resolution among the connections.
	coarsest int64
	// withoutPID counts the connections without a pid, which only their
	// instance key can pair with a child.
	withoutPID int
}

func indexConnections(set *mergeSet[Connection], sorter *keySorter) *connectionIndex {
	index := &connectionIndex{set: set, byPID: make([]groupKey, 0, len(set.firsts))}
	for _, i := range set.firsts {
		ref := set.refAt(i)
		c := set.at(ref)
		index.coarsest = max(index.coarsest, resolution(c.Time))
		if c.PID == UnknownPID {
			index.withoutPID++
			continue
		}
		index.byPID = append(index.byPID, groupKey{fingerprint: pidFingerprint(c.Host, c.PID), time: c.Time.UnixNano, i: ref})
	}
	sorter.sort(index.byPID)
	return index
}

// byInstance returns the connections that carry instance keys, keyed by
// (host, instance) in time order, once per key. Few children need it, so it
// is built on request.
func (index *connectionIndex) byInstance(sorter *keySorter) []groupKey {
	var keys []groupKey
	for _, i := range index.set.firsts {
		ref := index.set.refAt(i)
		c := index.set.at(ref)
		for key := range strings.FieldsSeq(c.Instance) {
			keys = append(keys, groupKey{fingerprint: instanceFingerprint(c.Host, key), time: c.Time.UnixNano, i: ref})
		}
	}
	sorter.sort(keys)
	return keys
}

// keyChildren keys each child of a service control manager by its parent's
// (host, pid) and, where a connection may be found only by its instance
// key, by its parent's (host, instance) once per instance key, in time
// order. A key's i is the child's position in procSet.firsts. Children
// whose parent pid is known need the instance lookup only when some
// connection lacks its pid.
func keyChildren(procSet *mergeSet[ProcessStart], connectionsWithoutPID bool, opts Options, sorter *keySorter) (byPID, byInstance []groupKey) {
	byPID = make([]groupKey, 0, len(procSet.firsts))
	for n, i := range procSet.firsts {
		p := procSet.at(procSet.refAt(i))

		// A merge may have named the parent.
		if p.ParentPath != "" && !isParentName(p.ParentPath, opts.ParentNames) {
			continue
		}
		if p.ParentPID != UnknownPID {
			byPID = append(byPID, groupKey{fingerprint: pidFingerprint(p.Host, p.ParentPID), time: p.Time.UnixNano, i: int32(n)})
		}
		if p.ParentInstance != "" && (p.ParentPID == UnknownPID || connectionsWithoutPID) {
			for key := range strings.FieldsSeq(p.ParentInstance) {
				byInstance = append(byInstance, groupKey{fingerprint: instanceFingerprint(p.Host, key), time: p.Time.UnixNano, i: int32(n)})
			}
		}
	}
	sorter.sort(byPID)
	sorter.sort(byInstance)
	return byPID, byInstance
}

// span is a time range around an instant t: (t - before, t + after).
type span struct {
	before, after int64
}

// candidateProcesses merges only the process starts that may take part in
// a detection, because merging is the costly part of Detect. It drops a
// record whose parent is named and is not a service control manager. It
// also drops a record when no qualifying connection of its parent pid lies
// within the window's span of it (of its host, where a pid is missing),
// widened by twice MergeSlack plus the coarsest resolution. The widening
// keeps every member of a merged record that matches, because a merge joins
// records within MergeSlack of the merged record's time.
func candidateProcesses(procs []ProcessStart, index *connectionIndex, window span, coarsestChild int64,
	opts Options, sorter *keySorter) *mergeSet[ProcessStart] {
	margin := 2 * (int64(MergeSlack) + coarsestChild)
	reach := span{before: window.before + margin, after: window.after + margin}

	// Connections by parent pid and, when some connection lacks its pid,
	// such connections by host.
	byParent := newWindowFilter(len(index.byPID), reach)
	for _, k := range index.byPID {
		byParent.add(k.fingerprint, k.time)
	}
	var withoutPIDByHost *windowFilter
	if index.withoutPID > 0 {
		withoutPIDByHost = newWindowFilter(index.withoutPID, reach)
		for _, i := range index.set.firsts {
			if c := index.set.at(index.set.refAt(i)); c.PID == UnknownPID {
				withoutPIDByHost.add(hashString(c.Host), c.Time.UnixNano)
			}
		}
	}

	// Children without a parent pid are rare. They are checked afterwards
	// against all connections of their host, so that filter is built only
	// when one turns up.
	candidates := make([]int32, 0, len(procs))
	var withoutParentPID []int32
	for i := range procs {
		p := &procs[i]
		if p.Time.IsZero() || p.ParentPath != "" && !isParentName(p.ParentPath, opts.ParentNames) {
			continue
		}

		switch {
		case p.ParentPID == UnknownPID:
			withoutParentPID = append(withoutParentPID, int32(i))
		case byParent.mayHave(pidFingerprint(p.Host, p.ParentPID), p.Time.UnixNano),
			withoutPIDByHost != nil && withoutPIDByHost.mayHave(hashString(p.Host), p.Time.UnixNano):
			candidates = append(candidates, int32(i))
		}
	}

	if len(withoutParentPID) > 0 {
		byHost := newWindowFilter(len(index.set.firsts), reach)
		for _, i := range index.set.firsts {
			c := index.set.at(index.set.refAt(i))
			byHost.add(hashString(c.Host), c.Time.UnixNano)
		}
		for _, i := range withoutParentPID {
			if byHost.mayHave(hashString(procs[i].Host), procs[i].Time.UnixNano) {
				candidates = append(candidates, i)
			}
		}
		slices.Sort(candidates)
	}
	return mergeProcesses(procs, candidates, sorter)
}

// sweep calls visit(child, conn, fingerprint) for the keys of one group
// whose connection time lies in [child time - window.before, child time +
// window.after). Both key lists are sorted, so the lower bound only moves
// forward and the sweep costs O(len(children) + len(conns) + pairs
// visited).
func sweep(children, conns []groupKey, window span, visit func(child, conn int32, fingerprint uint64)) {
	j := 0
	for _, child := range children {
		lower := groupKey{fingerprint: child.fingerprint, time: child.time - window.before}
		for j < len(conns) && compareGroupKeys(conns[j], lower) < 0 {
			j++
		}

		upper := child.time + window.after
		for k := j; k < len(conns) && conns[k].fingerprint == child.fingerprint && conns[k].time < upper; k++ {
			visit(child.i, conns[k].i, child.fingerprint)
		}
	}
}

// matchState counts the qualifying connections of one child and keeps the
// ref of the nearest.
type matchState struct {
	count   int32
	nearest int32
}

// matcher applies the rule to the pairs that the sweeps find.
type matcher struct {
	procs     *mergeSet[ProcessStart]
	conns     *mergeSet[Connection]
	opts      *Options
	tolerance time.Duration
	// states is indexed by the child's position in procs.firsts.
	states []matchState
}

func (m *matcher) child(n int32) *ProcessStart {
	return m.procs.at(m.procs.refAt(m.procs.firsts[n]))
}

// considerByPID applies the rule to a pair found by the parent's pid.
func (m *matcher) considerByPID(n, ref int32, _ uint64) {
	p, c := m.child(n), m.conns.at(ref)
	if c.Host != p.Host || c.PID != p.ParentPID {
		return
	}
	m.consider(n, p, ref, c)
}

// considerByInstance applies the rule to a pair found by the parent's
// instance key with this fingerprint. A connection with a pid, where the
// child's parent pid is known too, was either found by pid already or
// belongs to another pid. A pair that shares several keys is found once per
// key and counted only through its first shared key.
func (m *matcher) considerByInstance(n, ref int32, fingerprint uint64) {
	p, c := m.child(n), m.conns.at(ref)
	if c.Host != p.Host {
		return
	}
	shared, ok := firstSharedInstance(p.ParentInstance, c.Instance)
	if !ok || instanceFingerprint(p.Host, shared) != fingerprint {
		return
	}
	if p.ParentPID != UnknownPID && c.PID != UnknownPID {
		return
	}
	m.consider(n, p, ref, c)
}

// consider counts the connection for the child if it qualifies and keeps it
// if it is the nearest so far.
func (m *matcher) consider(n int32, p *ProcessStart, ref int32, c *Connection) {
	if !timeMatches(p.Time, c.Time, m.opts.Window, m.tolerance) {
		return
	}
	if instancesConflict(p.ParentInstance, c.Instance) {
		return
	}
	if p.ParentPath == "" && !isParentName(c.Path, m.opts.ParentNames) {
		return
	}

	state := &m.states[n]
	state.count++
	if state.count == 1 || m.nearer(p, ref, state.nearest) {
		state.nearest = ref
	}
}

// nearer reports whether connection a is nearer the child p than b. A
// connection that starts at or before the child beats one after it (those
// qualify only through the clock tolerance). Before the child the later
// start wins, after it the earlier one, and the first input record breaks
// ties.
func (m *matcher) nearer(p *ProcessStart, a, b int32) bool {
	child := p.Time.UnixNano
	timeA, timeB := m.conns.at(a).Time.UnixNano, m.conns.at(b).Time.UnixNano
	beforeA, beforeB := timeA <= child, timeB <= child
	switch {
	case beforeA != beforeB:
		return beforeA
	case timeA != timeB && beforeA:
		return timeA > timeB
	case timeA != timeB:
		return timeA < timeB
	default:
		return m.conns.firstIndex(a) < m.conns.firstIndex(b)
	}
}

// detections returns the results, sorted by host, child start time and
// child pid.
func (m *matcher) detections() []Detection {
	var detections []Detection
	for n, state := range m.states {
		if state.count > 0 {
			detections = append(detections, m.detection(n))
		}
	}

	slices.SortStableFunc(detections, func(a, b Detection) int {
		return cmp.Or(
			strings.Compare(a.Process.Host, b.Process.Host),
			cmp.Compare(a.Process.Time.UnixNano, b.Process.Time.UnixNano),
			cmp.Compare(a.Process.PID, b.Process.PID),
		)
	})
	return detections
}

// detection builds the result for the child at position n. The connection
// proves which process the parent was, so the child's missing parent fields
// are filled from it.
func (m *matcher) detection(n int) Detection {
	state := m.states[n]
	c := *m.conns.at(state.nearest)
	p := *m.child(int32(n))
	fillPID(&p.ParentPID, c.PID)
	p.ParentInstance = joinInstances(p.ParentInstance, c.Instance)
	fillString(&p.ParentPath, c.Path)

	return Detection{
		Process:         p,
		Connection:      c,
		ConnectionCount: int(state.count),
		DelayMillis:     delayMillis(p.Time, c.Time, m.opts.Window),
		Precision:       precisionName(p.Time.Resolution, c.Time.Resolution),
	}
}
