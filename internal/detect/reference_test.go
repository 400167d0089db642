package detect_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/detect/detecttest"
)

// TestDetectMatchesReference compares Detect with a direct reading of the
// rule, which merges everything and then tries every pair, on many small
// random event sets. Detect's filters, indexes and sweeps must not change
// any result.
func TestDetectMatchesReference(t *testing.T) {
	t.Parallel()

	const sets = 3000
	found := 0
	for seed := range uint64(sets) {
		rng := rand.New(rand.NewPCG(seed, 7))
		procs, conns := randomEvents(rng)
		opts := randomOptions(rng)

		want := referenceDetect(procs, conns, opts)
		got := detect.Detect(procs, conns, opts)
		require.Equal(t, want, got, "seed %d", seed)
		found += len(want)
	}

	// The sets must exercise matches, not only their absence.
	require.Greater(t, found, sets/10, "detections found")
}

// TestDetectSyntheticMatchesReference compares Detect with the reference on
// the benchmark's synthetic fleets, where most records are filtered out
// before merging and indexes hold thousands of keys.
func TestDetectSyntheticMatchesReference(t *testing.T) {
	t.Parallel()

	for seed := range int64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()

			procs, conns := detecttest.Synthetic(4000, seed)
			opts := detect.DefaultOptions()
			opts.ClockTolerance = time.Duration(seed) * 300 * time.Millisecond

			want := referenceDetect(procs, conns, opts)
			require.NotEmpty(t, want)
			require.Equal(t, want, detect.Detect(procs, conns, opts))
		})
	}
}

// TestDetectIgnoresDuplicateEvents loads every random event set twice, as
// overlapping exports would, and expects the detections of loading it once.
func TestDetectIgnoresDuplicateEvents(t *testing.T) {
	t.Parallel()

	const sets = 1000
	found := 0
	for seed := range uint64(sets) {
		rng := rand.New(rand.NewPCG(seed, 7))
		procs, conns := randomEvents(rng)
		opts := randomOptions(rng)

		want := detect.Detect(procs, conns, opts)
		got := detect.Detect(slices.Concat(procs, procs), slices.Concat(conns, conns), opts)
		require.Equal(t, want, got, "seed %d", seed)
		found += len(want)
	}
	require.Greater(t, found, sets/10, "detections found")
}

// referenceDetect applies the rule the slow and obvious way.
func referenceDetect(procs []detect.ProcessStart, conns []detect.Connection, opts detect.Options) []detect.Detection {
	mergedProcs := detect.MergeProcesses(procs)
	mergedConns := detect.MergeConnections(conns)

	var out []detect.Detection
	for _, p := range mergedProcs {
		if p.Time.IsZero() || p.ParentPath != "" && !referenceParentName(p.ParentPath, opts.ParentNames) {
			continue
		}

		count := 0
		var nearest detect.Connection
		for _, c := range mergedConns {
			if !referenceQualifies(p, c, opts) {
				continue
			}
			count++
			if count == 1 || referenceNearer(p, c, nearest) {
				nearest = c
			}
		}
		if count == 0 {
			continue
		}

		if p.ParentPID == detect.UnknownPID {
			p.ParentPID = nearest.PID
		}
		p.ParentInstance = referenceJoin(p.ParentInstance, nearest.Instance)
		if p.ParentPath == "" {
			p.ParentPath = nearest.Path
		}
		delay := (p.Time.UnixNano - nearest.Time.UnixNano) / int64(time.Millisecond)
		out = append(out, detect.Detection{
			Process:         p,
			Connection:      nearest,
			ConnectionCount: count,
			DelayMillis:     min(max(delay, 0), opts.Window.Milliseconds()),
			Precision:       referencePrecision(max(p.Time.Resolution, nearest.Time.Resolution)),
		})
	}

	slices.SortStableFunc(out, func(a, b detect.Detection) int {
		return cmp.Or(
			strings.Compare(a.Process.Host, b.Process.Host),
			cmp.Compare(a.Process.Time.UnixNano, b.Process.Time.UnixNano),
			cmp.Compare(a.Process.PID, b.Process.PID),
		)
	})
	return out
}

func referenceQualifies(p detect.ProcessStart, c detect.Connection, opts detect.Options) bool {
	if !c.Inbound || c.Time.IsZero() || c.Host != p.Host {
		return false
	}
	if !opts.IncludeLoopback && referenceLoopback(c.RemoteAddress, opts.HostAddresses[c.Host]) {
		return false
	}

	if referenceConflict(p.ParentInstance, c.Instance) {
		return false
	}
	if p.ParentPID != detect.UnknownPID && c.PID != detect.UnknownPID {
		if p.ParentPID != c.PID {
			return false
		}
	} else if !referenceShare(p.ParentInstance, c.Instance) {
		return false
	}
	if p.ParentPath == "" && !referenceParentName(c.Path, opts.ParentNames) {
		return false
	}

	// Some instants of the two intervals lie between -tolerance and window
	// apart.
	resolutionP := max(int64(p.Time.Resolution), 1)
	resolutionC := max(int64(c.Time.Resolution), 1)
	lowest := p.Time.UnixNano - (c.Time.UnixNano + resolutionC)
	highest := p.Time.UnixNano + resolutionP - c.Time.UnixNano
	return lowest < int64(opts.Window) && highest > -int64(max(opts.ClockTolerance, 0))
}

// referenceConflict reports whether two instance key lists hold different
// keys of one kind.
func referenceConflict(a, b string) bool {
	for _, x := range strings.Fields(a) {
		for _, y := range strings.Fields(b) {
			if x != y && detect.InstanceKind(x) == detect.InstanceKind(y) {
				return true
			}
		}
	}
	return false
}

// referenceShare reports whether two instance key lists have a key in
// common.
func referenceShare(a, b string) bool {
	for _, x := range strings.Fields(a) {
		if slices.Contains(strings.Fields(b), x) {
			return true
		}
	}
	return false
}

// referenceJoin appends to a the keys of b whose kind a lacks.
func referenceJoin(a, b string) string {
	keys := strings.Fields(a)
	for _, y := range strings.Fields(b) {
		if !slices.ContainsFunc(keys, func(x string) bool { return detect.InstanceKind(x) == detect.InstanceKind(y) }) {
			keys = append(keys, y)
		}
	}
	return strings.Join(keys, " ")
}

func referenceNearer(p detect.ProcessStart, a, b detect.Connection) bool {
	beforeA, beforeB := a.Time.UnixNano <= p.Time.UnixNano, b.Time.UnixNano <= p.Time.UnixNano
	switch {
	case beforeA != beforeB:
		return beforeA
	case beforeA:
		return a.Time.UnixNano > b.Time.UnixNano
	default:
		return a.Time.UnixNano < b.Time.UnixNano
	}
}

func referenceParentName(path string, names []string) bool {
	base := path[strings.LastIndexAny(path, `\/`)+1:]
	return base != "" && slices.ContainsFunc(names, func(name string) bool { return strings.EqualFold(base, name) })
}

func referenceLoopback(remote string, own []string) bool {
	addr, err := netip.ParseAddr(remote)
	if err != nil {
		return false
	}
	addr = addr.WithZone("").Unmap()
	if addr.IsLoopback() {
		return true
	}
	for _, s := range own {
		if o, err := netip.ParseAddr(s); err == nil && o.WithZone("").Unmap() == addr {
			return true
		}
	}
	return false
}

func referencePrecision(r time.Duration) string {
	switch {
	case r <= 100*time.Nanosecond:
		return "100ns"
	case r <= time.Millisecond:
		return "ms"
	default:
		return "s"
	}
}

// randomOptions varies the options that change the rule.
func randomOptions(rng *rand.Rand) detect.Options {
	opts := detect.DefaultOptions()
	opts.HostAddresses = map[string][]string{"A": {"10.0.0.1", "fe80::1"}}
	if rng.IntN(4) == 0 {
		opts.ClockTolerance = 500 * time.Millisecond
	}
	if rng.IntN(8) == 0 {
		opts.IncludeLoopback = true
	}
	if rng.IntN(8) == 0 {
		opts.Window = 2 * time.Second
	}
	return opts
}

// randomEvents returns a few processes and connections on two hosts within
// a few seconds, often reported twice by different sources. Records of one
// process agree on its parent, as real sources do.
//
// NOTE: Detect merges only the records that can take part in a detection.
// Its result equals that of merging everything first, as the reference
// does, except where one record could join either of two processes (a pid
// reused within MergeSlack), which these sets avoid.
func randomEvents(rng *rand.Rand) ([]detect.ProcessStart, []detect.Connection) {
	start := time.Date(2020, 9, 20, 16, 16, 50, 0, time.UTC).UnixNano()
	hosts := []string{"A", "B"}
	parentPIDs := []int64{600, 600, 700, 700, 604, detect.UnknownPID}
	parentPaths := map[int64][]string{
		600: {`C:\Windows\system32\services.exe`, `\device\harddiskvolume2\windows\system32\services.exe`, ""},
		604: {`C:\Windows\explorer.exe`, ""},
		700: {`C:\Windows\System32\SERVICES.EXE`, ""},
	}
	// An instance key names one boot's process of a pid; "-old" is the
	// same pid before a reboot.
	instanceOf := func(host string, pid int64) []string {
		return []string{"", fmt.Sprintf("%s-%d", host, pid), fmt.Sprintf("%s-%d-old", host, pid)}
	}
	randomTime := func() detect.Timestamp {
		resolution := []time.Duration{detect.ResolutionFiletime, detect.ResolutionMillisecond, detect.ResolutionSecond}[rng.IntN(3)]
		t := start + rng.Int64N(int64(6*time.Second))
		return detect.Timestamp{UnixNano: t / int64(resolution) * int64(resolution), Resolution: resolution}
	}
	sources := []string{detect.SourceSysmon, detect.SourceSecurity, detect.SourceETW}
	// ETW numbers process instances in its own way: its keys have their
	// own kind, which is never compared with a Sysmon ProcessGuid.
	kindOf := func(source, key string) string {
		if source == detect.SourceETW && key != "" {
			return detect.InstanceKindETW + key
		}
		return key
	}

	// Each process has its own pid and command line, so that a record
	// lacking either can be merged with one process only.
	var procs []detect.ProcessStart
	for k := range rng.IntN(10) {
		host := hosts[rng.IntN(len(hosts))]
		parent := parentPIDs[rng.IntN(len(parentPIDs))]
		instances := instanceOf(host, parent)
		if parent == detect.UnknownPID {
			instances = instanceOf(host, []int64{600, 700}[rng.IntN(2)])
		}
		source := sources[rng.IntN(len(sources))]
		p := detect.ProcessStart{
			Host:           host,
			PID:            1000 + int64(k),
			Instance:       kindOf(source, fmt.Sprintf("%s-%d", host, 1000+k)),
			ParentPID:      parent,
			ParentInstance: kindOf(source, instances[rng.IntN(3)]),
			Path:           `C:\Windows\System32\cmd.exe`,
			Cmdline:        fmt.Sprintf("cmd.exe /c %d", k),
			Time:           randomTime(),
			Sources:        []string{source},
		}
		if paths, ok := parentPaths[parent]; ok {
			p.ParentPath = paths[rng.IntN(len(paths))]
		}
		if rng.IntN(10) == 0 {
			p.Time = detect.Timestamp{}
		}
		procs = append(procs, p)

		// The same process from another source, later and blurred.
		if rng.IntN(2) == 0 {
			twin := p
			twin.Sources = []string{sources[(slices.Index(sources, p.Sources[0])+1+rng.IntN(2))%len(sources)]}
			if (p.Sources[0] == detect.SourceETW) != (twin.Sources[0] == detect.SourceETW) {
				// The other source names the same instances in its own
				// kind of key.
				twin.Instance = kindOf(twin.Sources[0], strings.TrimPrefix(p.Instance, detect.InstanceKindETW))
				twin.ParentInstance = kindOf(twin.Sources[0], strings.TrimPrefix(p.ParentInstance, detect.InstanceKindETW))
			}
			twin.Time = detect.Timestamp{UnixNano: p.Time.UnixNano + rng.Int64N(int64(3*time.Second)), Resolution: detect.ResolutionSecond}
			twin.Time.UnixNano -= twin.Time.UnixNano % int64(time.Second)
			if rng.IntN(2) == 0 {
				twin.PID = detect.UnknownPID
			}
			if rng.IntN(2) == 0 {
				twin.ParentInstance = ""
			}
			if rng.IntN(2) == 0 {
				twin.Path = `C:\WINDOWS\system32\CMD.EXE`
			}
			procs = append(procs, twin)
		}
	}

	var conns []detect.Connection
	ownerPIDs := []int64{600, 600, 700, 700, 604, 4, detect.UnknownPID}
	ownerPaths := map[int64][]string{
		600: {`C:\Windows\system32\services.exe`, ""},
		604: {`C:\Windows\explorer.exe`, ""},
		700: {`\device\harddiskvolume2\windows\system32\services.exe`, ""},
		4:   {"System"},
	}
	remotes := []string{"10.0.0.9", "10.0.0.9", "10.0.0.7", "10.0.0.7", "127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "fe80:0:0:0:0:0:0:1"}
	for range rng.IntN(10) {
		host := hosts[rng.IntN(len(hosts))]
		owner := ownerPIDs[rng.IntN(len(ownerPIDs))]
		c := detect.Connection{
			Host:          host,
			PID:           owner,
			Instance:      instanceOf(host, owner)[rng.IntN(3)],
			Inbound:       rng.IntN(5) != 0,
			Protocol:      "tcp",
			LocalAddress:  "10.0.0.2",
			LocalPort:     49726,
			RemoteAddress: remotes[rng.IntN(len(remotes))],
			RemotePort:    50000 + rng.IntN(3),
			Time:          randomTime(),
			Sources:       []string{detect.SourceSysmon},
		}
		if owner == detect.UnknownPID {
			// A connection without a pid still belongs to one process;
			// make it a services.exe so that its path agrees.
			c.Instance = instanceOf(host, []int64{600, 700}[rng.IntN(2)])[1+rng.IntN(2)]
			c.Path = `C:\Windows\system32\services.exe`
		} else {
			c.Path = ownerPaths[owner][rng.IntN(len(ownerPaths[owner]))]
		}
		conns = append(conns, c)

		if rng.IntN(2) == 0 {
			twin := c
			twin.Sources = []string{detect.SourceSecurity}
			twin.Instance = ""
			if rng.IntN(3) == 0 {
				// A key of another kind for the same process, so that
				// merged connections carry two keys.
				twin.Instance = kindOf(detect.SourceETW, c.Instance)
			}
			twin.Protocol = "TCP"
			twin.Time = detect.Timestamp{UnixNano: c.Time.UnixNano + rng.Int64N(int64(2*time.Second)), Resolution: detect.ResolutionSecond}
			twin.Time.UnixNano -= twin.Time.UnixNano % int64(time.Second)
			if rng.IntN(2) == 0 {
				c.PID = detect.UnknownPID
				conns[len(conns)-1] = c
			}
			conns = append(conns, twin)
		}
	}

	rng.Shuffle(len(procs), func(i, j int) { procs[i], procs[j] = procs[j], procs[i] })
	rng.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	return procs, conns
}
