// Package detecttest generates synthetic event sets shaped like Windows
// fleet telemetry, for benchmarks of the detector and of the layers above it.
package detecttest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// Shares of the generated events. Together they give a fleet where most
// process starts are children of services.exe with no connection in the
// window, and a few are remote launches.
const (
	shareLaunches      = 0.001 // remote launches: a connection plus a child 0 to 999 ms later
	shareServicesChild = 0.70  // other children of services.exe
	shareDuplicates    = 0.10  // events also reported by Security 4688 or 5156

	shareServicesInbound = 0.30 // inbound connections to services.exe from other hosts
	shareLoopback        = 0.05 // inbound connections to services.exe from the host itself
	shareSMB             = 0.20 // inbound connections to the System process on port 445; the rest are outbound
)

// Epoch is the start of the synthetic timeline: 2020-09-20 00:00:00 UTC.
var Epoch = time.Date(2020, 9, 20, 0, 0, 0, 0, time.UTC)

var (
	sysmonSources   = []string{detect.SourceSysmon}
	securitySources = []string{detect.SourceSecurity}
	childPaths      = []string{
		`C:\Windows\System32\svchost.exe`,
		`C:\Windows\System32\cmd.exe`,
		`C:\Windows\System32\msiexec.exe`,
		`C:\Windows\System32\SearchIndexer.exe`,
		`C:\Program Files\Windows Defender\MsMpEng.exe`,
	}
	childCmdlines = []string{
		`C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule`,
		`cmd.exe /C start /b powershell -noP -sta -w 1 -enc SQBGACgA`,
		`C:\Windows\system32\msiexec.exe /V`,
		`C:\Windows\system32\SearchIndexer.exe /Embedding`,
		`"C:\Program Files\Windows Defender\MsMpEng.exe"`,
	}
	otherParents = []string{
		`C:\Windows\explorer.exe`,
		`C:\Windows\System32\svchost.exe`,
		`C:\Windows\System32\cmd.exe`,
	}
)

const (
	servicesSysmonPath   = `C:\Windows\system32\services.exe`
	servicesSecurityPath = `C:\Windows\System32\services.exe`
	servicesDevicePath   = `\device\harddiskvolume2\windows\system32\services.exe`
)

// servicesInstance is one boot's services.exe on a host.
type servicesInstance struct {
	pid      int64
	instance string
}

// host is one synthetic computer. It reboots at the middle of the timeline,
// so services.exe has a new pid and instance key in the second half.
type host struct {
	name     string
	address  string
	services [2]servicesInstance
}

type generator struct {
	rng   *rand.Rand
	hosts []host
	span  int64
	procs []detect.ProcessStart
	conns []detect.Connection
}

// Synthetic returns n process starts and n connections, the same for the
// same n and seed. Records come roughly in the order an event table returns
// them (by source, then by time), and each record's strings are allocated in that
// order, as a decoder allocates them.
//
// The fleet has n/100 hosts, at most 300, each with one process start per
// 90 s on average from Epoch on. Each host's services.exe changes pid and
// instance key at a reboot in the middle. Process starts come from Sysmon
// (millisecond times) and, for a tenth of them, also from Security (whole
// seconds, no instance key), and then half of the Sysmon records lack the
// pid. About one process start in a thousand is a remote launch: an inbound
// connection to services.exe followed by its child within 1 s.
func Synthetic(n int, seed int64) ([]detect.ProcessStart, []detect.Connection) {
	g := &generator{
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		procs: make([]detect.ProcessStart, 0, n+1),
		conns: make([]detect.Connection, 0, n+1),
	}
	hosts := min(300, max(1, n/100))
	g.makeHosts(hosts)

	// Each host has one process start per 90 s on average, and so about
	// one inbound connection to services.exe per 300 s.
	g.span = max(int64(n/hosts), 1) * int64(90*time.Second)

	for len(g.procs) < n {
		share := g.rng.Float64()
		switch {
		case share < shareLaunches && len(g.conns) < n:
			g.addLaunch()
		case share < shareServicesChild:
			g.addChild(true)
		default:
			g.addChild(false)
		}
	}
	for len(g.conns) < n {
		g.addConnection()
	}

	// Keep exactly n of each, because a duplicate record may overshoot by one.
	procs, conns := g.procs[:n], g.conns[:n]

	// Order the records roughly as an event table returns them: by source,
	// and within a source by time. Then give every record its own copies of its strings
	// in that order, as a decoder does when it reads rows.
	slices.SortStableFunc(procs, func(a, b detect.ProcessStart) int {
		return cmp.Or(cmp.Compare(a.Sources[0], b.Sources[0]), cmp.Compare(a.Time.UnixNano, b.Time.UnixNano))
	})
	slices.SortStableFunc(conns, func(a, b detect.Connection) int {
		return cmp.Or(cmp.Compare(a.Sources[0], b.Sources[0]), cmp.Compare(a.Time.UnixNano, b.Time.UnixNano))
	})
	for i := range procs {
		cloneProcessStrings(&procs[i])
	}
	for i := range conns {
		cloneConnectionStrings(&conns[i])
	}
	return procs, conns
}

func cloneProcessStrings(p *detect.ProcessStart) {
	for _, s := range []*string{&p.Host, &p.Instance, &p.ParentInstance, &p.ParentPath, &p.Path, &p.Cmdline, &p.Username} {
		*s = strings.Clone(*s)
	}
	p.Sources = slices.Clone(p.Sources)
}

func cloneConnectionStrings(c *detect.Connection) {
	for _, s := range []*string{&c.Host, &c.Instance, &c.Path, &c.Protocol, &c.LocalAddress, &c.RemoteAddress} {
		*s = strings.Clone(*s)
	}
	c.Sources = slices.Clone(c.Sources)
}

func (g *generator) makeHosts(count int) {
	g.hosts = make([]host, count)
	for i := range g.hosts {
		h := &g.hosts[i]
		h.name = fmt.Sprintf("WORKSTATION%d", i)
		h.address = fmt.Sprintf("10.%d.%d.%d", 1+i/65536, i/256%256, 1+i%254)
		for boot := range h.services {
			h.services[boot] = servicesInstance{pid: 500 + 4*g.rng.Int64N(100), instance: g.guid()}
		}
	}
}

// event picks a host and a time, and the services.exe instance running then.
func (g *generator) event() (*host, int64, servicesInstance) {
	h := &g.hosts[g.rng.IntN(len(g.hosts))]
	offset := g.rng.Int64N(g.span)
	boot := 0
	if offset >= g.span/2 {
		boot = 1
	}
	t := Epoch.UnixNano() + offset/int64(time.Millisecond)*int64(time.Millisecond)
	return h, t, h.services[boot]
}

func (g *generator) addLaunch() {
	h, t, svc := g.event()
	g.addConnectionRecord(detect.Connection{
		Host:          h.name,
		PID:           svc.pid,
		Instance:      svc.instance,
		Path:          servicesSysmonPath,
		Inbound:       true,
		Protocol:      "tcp",
		LocalAddress:  h.address,
		LocalPort:     49726,
		RemoteAddress: g.remoteAddress(),
		RemotePort:    49152 + g.rng.IntN(16384),
		Time:          detect.Timestamp{UnixNano: t, Resolution: detect.ResolutionMillisecond},
		Sources:       sysmonSources,
	})

	child := t + g.rng.Int64N(1000)*int64(time.Millisecond)
	g.addProcessRecord(h, child, svc.pid, svc.instance, servicesSysmonPath, servicesSecurityPath)
}

// addChild adds a process start with services.exe or another process as
// its parent.
func (g *generator) addChild(ofServices bool) {
	h, t, svc := g.event()
	if ofServices {
		g.addProcessRecord(h, t, svc.pid, svc.instance, servicesSysmonPath, servicesSecurityPath)
		return
	}

	parent := otherParents[g.rng.IntN(len(otherParents))]
	g.addProcessRecord(h, t, 1000+4*g.rng.Int64N(16000), g.guid(), parent, parent)
}

// addProcessRecord adds the Sysmon record of a process start and, for a
// share of them, the Security record of the same process.
func (g *generator) addProcessRecord(h *host, t, parentPID int64, parentInstance, sysmonParent, securityParent string) {
	kind := g.rng.IntN(len(childPaths))
	sysmon := detect.ProcessStart{
		Host:           h.name,
		PID:            1000 + 4*g.rng.Int64N(16000),
		Instance:       g.guid(),
		ParentPID:      parentPID,
		ParentInstance: parentInstance,
		ParentPath:     sysmonParent,
		Path:           childPaths[kind],
		Cmdline:        childCmdlines[kind],
		Username:       `NT AUTHORITY\SYSTEM`,
		Time:           detect.Timestamp{UnixNano: t, Resolution: detect.ResolutionMillisecond},
		Sources:        sysmonSources,
	}
	if g.rng.Float64() >= shareDuplicates {
		g.procs = append(g.procs, sysmon)
		return
	}

	security := detect.ProcessStart{
		Host:       h.name,
		PID:        sysmon.PID,
		ParentPID:  parentPID,
		ParentPath: securityParent,
		Path:       sysmon.Path,
		Cmdline:    sysmon.Cmdline,
		Username:   h.name + "$",
		Time:       wholeSecondsLater(t, g.rng.Int64N(2)),
		Sources:    securitySources,
	}
	if g.rng.IntN(2) == 0 {
		sysmon.PID = detect.UnknownPID
	}
	g.procs = append(g.procs, sysmon, security)
}

// addConnection adds one connection of the common kinds.
func (g *generator) addConnection() {
	h, t, svc := g.event()
	c := detect.Connection{
		Host:         h.name,
		Protocol:     "tcp",
		LocalAddress: h.address,
		Time:         detect.Timestamp{UnixNano: t, Resolution: detect.ResolutionMillisecond},
		Sources:      sysmonSources,
	}

	share := g.rng.Float64()
	switch {
	case share < shareServicesInbound:
		c.PID, c.Instance, c.Path = svc.pid, svc.instance, servicesSysmonPath
		c.Inbound = true
		c.LocalPort = 49152 + g.rng.IntN(16384)
		c.RemoteAddress, c.RemotePort = g.remoteAddress(), 49152+g.rng.IntN(16384)
	case share < shareServicesInbound+shareLoopback:
		c.PID, c.Instance, c.Path = svc.pid, svc.instance, servicesSysmonPath
		c.Inbound = true
		c.LocalAddress, c.LocalPort = "127.0.0.1", 49152+g.rng.IntN(16384)
		c.RemoteAddress, c.RemotePort = "127.0.0.1", 49152+g.rng.IntN(16384)
	case share < shareServicesInbound+shareLoopback+shareSMB:
		c.PID, c.Path = 4, "System"
		c.Inbound = true
		c.LocalPort = 445
		c.RemoteAddress, c.RemotePort = g.remoteAddress(), 49152+g.rng.IntN(16384)
	default:
		c.PID, c.Instance, c.Path = 1000+4*g.rng.Int64N(16000), g.guid(), childPaths[g.rng.IntN(len(childPaths))]
		c.LocalPort = 49152 + g.rng.IntN(16384)
		c.RemoteAddress, c.RemotePort = g.remoteAddress(), 443
	}
	g.addConnectionRecord(c)
}

// addConnectionRecord adds the Sysmon record of a connection and, for a
// share of them, the Security 5156 record: whole seconds, the device path
// form, no instance key.
func (g *generator) addConnectionRecord(c detect.Connection) {
	if g.rng.Float64() >= shareDuplicates {
		g.conns = append(g.conns, c)
		return
	}

	security := c
	security.Instance = ""
	security.Time = wholeSecondsLater(c.Time.UnixNano, g.rng.Int64N(2))
	security.Sources = securitySources
	if c.Path == servicesSysmonPath {
		security.Path = servicesDevicePath
	}
	g.conns = append(g.conns, c, security)
}

func (g *generator) remoteAddress() string {
	return "172.18." + strconv.Itoa(g.rng.IntN(256)) + "." + strconv.Itoa(1+g.rng.IntN(254))
}

// guid returns a random key in Sysmon's ProcessGuid format.
func (g *generator) guid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("{%08X-%04X-%04X-%04X-%012X}", uint32(a>>32), uint16(a>>16), uint16(a), uint16(b>>48), b&0xFFFFFFFFFFFF)
}

// wholeSecondsLater returns a whole-second timestamp covering t plus the
// given number of seconds, as a Security event written a moment later.
func wholeSecondsLater(t, seconds int64) detect.Timestamp {
	second := int64(time.Second)
	return detect.Timestamp{UnixNano: t/second*second + seconds*second, Resolution: detect.ResolutionSecond}
}
