package bench

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Shares of the generated events, the same mix as the detector's synthetic
// fleet (internal/detect/detecttest): most process starts are children of
// services.exe with no connection near them, and about one in a thousand is
// a remote launch.
const (
	shareLaunches      = 0.001 // process starts that are remote launches: an inbound connection, then the child 0 to 999 ms later
	shareServicesChild = 0.70  // other process starts with services.exe as the parent

	shareServicesInbound = 0.30 // connections accepted by services.exe from another host
	shareLoopback        = 0.05 // connections accepted by services.exe from the host itself
	shareSMB             = 0.20 // connections accepted by the System process on port 445; the rest are outbound
)

// fleetSpan is the time the generated events cover. It lies inside the
// table's default lookback of one hour (osquery's default
// --events_expiry), so every generated row is read.
const fleetSpan = 50 * time.Minute

// processInterval is the mean time between two process starts on one host.
// It sets the number of hosts: a few hundred at 50,000 rows per source.
const processInterval = 90 * time.Second

// fleetStart is the time of the first generated event.
var fleetStart = time.Date(2020, 9, 20, 16, 0, 0, 0, time.UTC)

// Provider names, GUIDs and keywords of the two channels as windows_events
// stores them.
const (
	sysmonChannel      = "Microsoft-Windows-Sysmon/Operational"
	sysmonProvider     = "Microsoft-Windows-Sysmon"
	sysmonProviderGUID = "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"
	sysmonKeywords     = "0x8000000000000000"

	securityChannel      = "Security"
	securityProvider     = "Microsoft-Windows-Security-Auditing"
	securityProviderGUID = "{54849625-5478-4994-A5BA-3E3B0328C30D}"
	securityKeywords     = "0x8020000000000000"
)

const (
	servicesPath       = `C:\Windows\System32\services.exe`
	servicesDevicePath = `\device\harddiskvolume2\windows\system32\services.exe`
)

// program is an image that the fleet starts, with its command line and
// version resource.
type program struct {
	path, cmdline, description, product, fileVersion, originalName string
}

var (
	serviceChildren = []program{
		{`C:\Windows\System32\svchost.exe`, `C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule`, "Host Process for Windows Services", "Microsoft® Windows® Operating System", "10.0.19041.546 (WinBuild.160101.0800)", "svchost.exe"},
		{`C:\Windows\System32\msiexec.exe`, `C:\Windows\system32\msiexec.exe /V`, "Windows® installer", "Windows Installer - Unicode", "5.0.19041.1 (WinBuild.160101.0800)", "msiexec.exe"},
		{`C:\Windows\System32\SearchIndexer.exe`, `C:\Windows\system32\SearchIndexer.exe /Embedding`, "Microsoft Windows Search Indexer", "Windows® Search", "7.0.19041.546 (WinBuild.160101.0800)", "SearchIndexer.exe"},
		{`C:\Program Files\Windows Defender\MsMpEng.exe`, `"C:\Program Files\Windows Defender\MsMpEng.exe"`, "Antimalware Service Executable", "Microsoft® Windows® Operating System", "4.18.2008.9 (WinBuild.160101.0800)", "MsMpEng.exe"},
		{`C:\Windows\servicing\TrustedInstaller.exe`, `C:\Windows\servicing\TrustedInstaller.exe`, "Windows Modules Installer", "Microsoft® Windows® Operating System", "10.0.19041.546 (WinBuild.160101.0800)", "TrustedInstaller.exe"},
	}
	// launchedProgram is what the remote launches start: Empire's
	// PsExec stager.
	launchedProgram = program{`C:\Windows\System32\cmd.exe`, `C:\windows\system32\cmd.exe /C start /b C:\Windows\System32\WindowsPowershell\v1.0\powershell -noP -sta -w 1 -enc  SQBmACgAJABQAFMAVgBFAHIAcwBJAG8ATgBUAGEAQgBsAEUALgBQAFMAVgBlAFIAUwBJAE8ATgAuAE0AYQBKAE8AUgAgAC0ARwBlACAAMwApAHsAJAAxADEAYgBmAD0AWwByAEUAZgBdAC4AQQBTAFMARQBtAEIAbAB5AC4ARwBFAHQAVAB5AHAAZQAoACcAUwB5AHMAdABlAG0ALgBNAGEAbgBhAGcAZQBtAGUAbgB0AC4AQQB1AHQAbwBtAGEAdABpAG8AbgAuAFUAdABpAGwAcwAnACkA`, "Windows Command Processor", "Microsoft® Windows® Operating System", "10.0.19041.546 (WinBuild.160101.0800)", "Cmd.Exe"}
	otherParents    = []program{
		{`C:\Windows\explorer.exe`, `C:\Windows\Explorer.EXE`, "", "", "", ""},
		{`C:\Windows\System32\svchost.exe`, `C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule`, "", "", "", ""},
		{`C:\Windows\System32\cmd.exe`, `"C:\Windows\system32\cmd.exe"`, "", "", "", ""},
	}
	otherChildren = []program{
		{`C:\Program Files\Common Files\microsoft shared\ClickToRun\OfficeC2RClient.exe`, `"C:\Program Files\Common Files\Microsoft Shared\ClickToRun\OfficeC2RClient.exe" /frequentupdate SCHEDULEDTASK displaylevel=False`, "Microsoft Office Click-to-Run Client", "Microsoft Office", "16.0.13127.20376", "OfficeC2RClient.exe"},
		{`C:\Windows\System32\conhost.exe`, `\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1`, "Console Window Host", "Microsoft® Windows® Operating System", "10.0.19041.546 (WinBuild.160101.0800)", "CONHOST.EXE"},
		{`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`, `powershell.exe -ExecutionPolicy Bypass -File C:\ProgramData\inventory.ps1`, "Windows PowerShell", "Microsoft® Windows® Operating System", "10.0.19041.546 (WinBuild.160101.0800)", "PowerShell.EXE"},
	}
)

// instance is one running process: its pid and Sysmon ProcessGuid.
type instance struct {
	pid  int64
	guid string
}

// fleetHost is one computer whose events the collector holds. It reboots in
// the middle of the span, so services.exe has a new pid and ProcessGuid in
// the second half.
type fleetHost struct {
	name, address string
	services      [2]instance
}

// fleetRows is the windows_events content of one Windows Event Collector
// that runs osquery and receives the Sysmon and Security events of a fleet.
// Every process start is written by both Sysmon (event 1) and Security
// (4688), and every connection by both Sysmon (event 3) and Security (5156),
// so both sources hold the same number of rows.
type fleetRows struct {
	sysmon, security []map[string]string
	// clock is osquery's clock for the engine (`SELECT unix_time FROM
	// time`): one minute after the last event, in Unix seconds.
	clock int64
	// hosts and launches count the generated computers and remote
	// launches.
	hosts, launches int
}

// all returns the rows of both sources.
func (f *fleetRows) all() []map[string]string {
	rows := make([]map[string]string, 0, len(f.sysmon)+len(f.security))
	return append(append(rows, f.sysmon...), f.security...)
}

// fleetGenerator writes the rows of generated events.
type fleetGenerator struct {
	rng   *rand.Rand
	hosts []fleetHost
	out   *fleetRows
	eid   int
}

// generateFleet returns perSource rows for each source, half process
// starts and half connections, the same for the same arguments. The rows
// come in the order osquery stores them: by receive time.
func generateFleet(perSource int, seed uint64) *fleetRows {
	processes := perSource / 2
	connections := perSource - processes

	g := &fleetGenerator{
		rng: rand.New(rand.NewPCG(seed, 0x5eed)),
		out: &fleetRows{
			sysmon:   make([]map[string]string, 0, perSource+1),
			security: make([]map[string]string, 0, perSource+1),
			clock:    fleetStart.Add(fleetSpan + time.Minute).Unix(),
		},
	}
	g.makeHosts(max(1, int(int64(processes)*int64(processInterval)/int64(fleetSpan))))

	for len(g.out.sysmon) < processes {
		share := g.rng.Float64()
		switch {
		case share < shareLaunches && len(g.out.sysmon)+2 <= processes:
			g.addLaunch()
		case share < shareServicesChild:
			h, t, services := g.event()
			g.addProcess(h, t, services, servicesPath, `C:\Windows\system32\services.exe`, serviceChildren[g.rng.IntN(len(serviceChildren))])
		default:
			h, t, _ := g.event()
			parent := otherParents[g.rng.IntN(len(otherParents))]
			g.addProcess(h, t, g.newInstance(), parent.path, parent.cmdline, otherChildren[g.rng.IntN(len(otherChildren))])
		}
	}
	for len(g.out.sysmon) < processes+connections {
		g.addConnection()
	}

	sortByReceiveTime(g.out.sysmon)
	sortByReceiveTime(g.out.security)
	return g.out
}

func (g *fleetGenerator) makeHosts(count int) {
	g.hosts = make([]fleetHost, count)
	g.out.hosts = count
	for i := range g.hosts {
		h := &g.hosts[i]
		h.name = fmt.Sprintf("WORKSTATION%d.theshire.local", i+1)
		h.address = fmt.Sprintf("10.%d.%d.%d", 1+i/65536, i/256%256, 1+i%254)
		for boot := range h.services {
			h.services[boot] = instance{pid: 500 + 4*g.rng.Int64N(100), guid: g.guid()}
		}
	}
}

// event picks a host and a time on the millisecond, and the services.exe
// instance running then.
func (g *fleetGenerator) event() (*fleetHost, time.Time, instance) {
	h := &g.hosts[g.rng.IntN(len(g.hosts))]
	offset := time.Duration(g.rng.Int64N(int64(fleetSpan)))
	boot := 0
	if offset >= fleetSpan/2 {
		boot = 1
	}
	return h, fleetStart.Add(offset.Truncate(time.Millisecond)), h.services[boot]
}

func (g *fleetGenerator) newInstance() instance {
	return instance{pid: 1000 + 4*g.rng.Int64N(16000), guid: g.guid()}
}

// guid returns a new key in Sysmon's ProcessGuid format.
func (g *fleetGenerator) guid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("{%08x-%04x-%04x-%04x-%012x}", uint32(a>>32), uint16(a>>16), uint16(a), uint16(b>>48), b&0xFFFFFFFFFFFF)
}

// remoteAddress returns a peer in another subnet than the fleet's own.
func (g *fleetGenerator) remoteAddress() string {
	return "172.18." + strconv.Itoa(g.rng.IntN(256)) + "." + strconv.Itoa(1+g.rng.IntN(254))
}

func (g *fleetGenerator) ephemeralPort() int {
	return 49152 + g.rng.IntN(16384)
}

// addLaunch adds a remote launch: services.exe accepts a connection and
// starts the stager 0 to 999 ms later.
func (g *fleetGenerator) addLaunch() {
	h, t, services := g.event()
	g.addConnectionEvent(connection{
		host: h, time: t, owner: services, image: servicesPath, deviceImage: servicesDevicePath,
		user: `NT AUTHORITY\SYSTEM`, inbound: true,
		localAddress: h.address, localPort: g.ephemeralPort(),
		remoteAddress: g.remoteAddress(), remotePort: g.ephemeralPort(),
	})
	child := t.Add(time.Duration(g.rng.Int64N(1000)) * time.Millisecond)
	g.addProcess(h, child, services, servicesPath, `C:\Windows\system32\services.exe`, launchedProgram)
	g.out.launches++
}

// addProcess writes one process start as Sysmon event 1 and Security 4688.
func (g *fleetGenerator) addProcess(h *fleetHost, t time.Time, parent instance, parentPath, parentCmdline string, p program) {
	child := g.newInstance()
	user := `NT AUTHORITY\SYSTEM`

	sysmon := newEventData(22)
	sysmon.add("RuleName", "-")
	sysmon.add("UtcTime", t.Format("2006-01-02 15:04:05.000"))
	sysmon.add("ProcessGuid", child.guid)
	sysmon.add("ProcessId", strconv.FormatInt(child.pid, 10))
	sysmon.add("Image", p.path)
	sysmon.add("FileVersion", p.fileVersion)
	sysmon.add("Description", p.description)
	sysmon.add("Product", p.product)
	sysmon.add("Company", "Microsoft Corporation")
	sysmon.add("OriginalFileName", p.originalName)
	sysmon.add("CommandLine", p.cmdline)
	sysmon.add("CurrentDirectory", `C:\Windows\system32\`)
	sysmon.add("User", user)
	sysmon.add("LogonGuid", "{d273d0f0-e865-5f64-e703-000000000000}")
	sysmon.add("LogonId", "0x3e7")
	sysmon.add("TerminalSessionId", "0")
	sysmon.add("IntegrityLevel", "System")
	sysmon.add("Hashes", "SHA1=5009839791AAD710921715D5B51E7A9A963B09F5,MD5=91C04C34E7145EDF11B0A9E96698763E,SHA256=010B0651370BE1E96B9616CC1B24396242B35B8FA67FDB8DBFC4A4B79A4CED28,IMPHASH=DE31D6A28F9C02A2C0EEBBE6E4B686A2")
	sysmon.add("ParentProcessGuid", parent.guid)
	sysmon.add("ParentProcessId", strconv.FormatInt(parent.pid, 10))
	sysmon.add("ParentImage", parentPath)
	sysmon.add("ParentCommandLine", parentCmdline)
	g.out.sysmon = append(g.out.sysmon, g.row(sysmonChannel, h, 1, 1, t, sysmon))

	account := strings.ToUpper(strings.SplitN(h.name, ".", 2)[0]) + "$"
	security := newEventData(15)
	security.add("SubjectUserSid", "S-1-5-18")
	security.add("SubjectUserName", account)
	security.add("SubjectDomainName", "THESHIRE")
	security.add("SubjectLogonId", "0x3e7")
	security.add("NewProcessId", "0x"+strconv.FormatInt(child.pid, 16))
	security.add("NewProcessName", p.path)
	security.add("TokenElevationType", "%%1936")
	security.add("ProcessId", "0x"+strconv.FormatInt(parent.pid, 16))
	security.add("CommandLine", p.cmdline)
	security.add("TargetUserSid", "S-1-0-0")
	security.add("TargetUserName", "-")
	security.add("TargetDomainName", "-")
	security.add("TargetLogonId", "0x0")
	security.add("ParentProcessName", parentPath)
	security.add("MandatoryLabel", "S-1-16-16384")
	g.out.security = append(g.out.security, g.row(securityChannel, h, 4688, 13312, g.auditTime(t), security))
}

// connection is one network connection of a process.
type connection struct {
	host  *fleetHost
	time  time.Time
	owner instance
	// image is the owner's path as Sysmon writes it, deviceImage as
	// Security 5156 writes it.
	image, deviceImage, user    string
	inbound                     bool
	localAddress, remoteAddress string
	localPort, remotePort       int
}

// addConnection adds a connection of the common kinds.
func (g *fleetGenerator) addConnection() {
	h, t, services := g.event()
	c := connection{host: h, time: t, localAddress: h.address, localPort: g.ephemeralPort(), user: `NT AUTHORITY\SYSTEM`}

	share := g.rng.Float64()
	switch {
	case share < shareServicesInbound:
		c.owner, c.image, c.deviceImage, c.inbound = services, servicesPath, servicesDevicePath, true
		c.remoteAddress, c.remotePort = g.remoteAddress(), g.ephemeralPort()
	case share < shareServicesInbound+shareLoopback:
		c.owner, c.image, c.deviceImage, c.inbound = services, servicesPath, servicesDevicePath, true
		c.localAddress, c.remoteAddress, c.remotePort = "127.0.0.1", "127.0.0.1", g.ephemeralPort()
	case share < shareServicesInbound+shareLoopback+shareSMB:
		c.owner, c.image, c.deviceImage, c.inbound = instance{pid: 4, guid: "{d273d0f0-e863-5f64-eb03-000000000000}"}, "System", "System", true
		c.localPort = 445
		c.remoteAddress, c.remotePort = g.remoteAddress(), g.ephemeralPort()
	default:
		p := otherChildren[g.rng.IntN(len(otherChildren))]
		c.owner, c.image, c.deviceImage = g.newInstance(), p.path, `\device\harddiskvolume2`+strings.ToLower(strings.TrimPrefix(p.path, "C:"))
		c.remoteAddress, c.remotePort = g.remoteAddress(), 443
	}
	g.addConnectionEvent(c)
}

// addConnectionEvent writes one connection as Sysmon event 3 and Security
// 5156. For an inbound connection both put the client in Source, as the
// 2020 Sysmon builds and Windows do.
func (g *fleetGenerator) addConnectionEvent(c connection) {
	sourceAddress, sourcePort := c.localAddress, c.localPort
	destinationAddress, destinationPort := c.remoteAddress, c.remotePort
	initiated, direction := "true", "%%14593"
	if c.inbound {
		sourceAddress, sourcePort, destinationAddress, destinationPort = destinationAddress, destinationPort, sourceAddress, sourcePort
		initiated, direction = "false", "%%14592"
	}

	sysmon := newEventData(18)
	sysmon.add("RuleName", "-")
	sysmon.add("UtcTime", c.time.Format("2006-01-02 15:04:05.000"))
	sysmon.add("ProcessGuid", c.owner.guid)
	sysmon.add("ProcessId", strconv.FormatInt(c.owner.pid, 10))
	sysmon.add("Image", c.image)
	sysmon.add("User", c.user)
	sysmon.add("Protocol", "tcp")
	sysmon.add("Initiated", initiated)
	sysmon.add("SourceIsIpv6", "false")
	sysmon.add("SourceIp", sourceAddress)
	sysmon.add("SourceHostname", "-")
	sysmon.add("SourcePort", strconv.Itoa(sourcePort))
	sysmon.add("SourcePortName", "-")
	sysmon.add("DestinationIsIpv6", "false")
	sysmon.add("DestinationIp", destinationAddress)
	sysmon.add("DestinationHostname", "-")
	sysmon.add("DestinationPort", strconv.Itoa(destinationPort))
	sysmon.add("DestinationPortName", "-")
	// Sysmon writes network events late: the record is created up to a
	// few seconds after UtcTime.
	created := c.time.Add(time.Duration(g.rng.Int64N(int64(3 * time.Second))))
	g.out.sysmon = append(g.out.sysmon, g.row(sysmonChannel, c.host, 3, 3, created, sysmon))

	security := newEventData(13)
	security.add("ProcessID", strconv.FormatInt(c.owner.pid, 10))
	security.add("Application", c.deviceImage)
	security.add("Direction", direction)
	security.add("SourceAddress", sourceAddress)
	security.add("SourcePort", strconv.Itoa(sourcePort))
	security.add("DestAddress", destinationAddress)
	security.add("DestPort", strconv.Itoa(destinationPort))
	security.add("Protocol", "6")
	security.add("FilterRTID", "71130")
	security.add("LayerName", "%%14610")
	security.add("LayerRTID", "44")
	security.add("RemoteUserID", "S-1-0-0")
	security.add("RemoteMachineID", "S-1-0-0")
	g.out.security = append(g.out.security, g.row(securityChannel, c.host, 5156, 12810, g.auditTime(c.time), security))
}

// auditTime returns the time the Security log stamps on an event that
// Sysmon stamped at t: a few milliseconds later, with 100 ns digits.
func (g *fleetGenerator) auditTime(t time.Time) time.Time {
	return t.Add(time.Duration(g.rng.Int64N(50_000)) * 100 * time.Nanosecond)
}

// row returns the windows_events row of one event created at created.
// osquery stores it up to two seconds later, and `time` is that receive
// time.
func (g *fleetGenerator) row(channel string, h *fleetHost, eventID, task int, created time.Time, data *eventData) map[string]string {
	provider, providerGUID, keywords := sysmonProvider, sysmonProviderGUID, sysmonKeywords
	if channel == securityChannel {
		provider, providerGUID, keywords = securityProvider, securityProviderGUID, securityKeywords
	}
	received := created.Add(time.Duration(g.rng.Int64N(int64(2 * time.Second))))

	g.eid++
	return map[string]string{
		"time":          strconv.FormatInt(received.Unix(), 10),
		"datetime":      created.Format("2006-01-02T15:04:05.0000000Z"),
		"source":        channel,
		"provider_name": provider,
		"provider_guid": providerGUID,
		"computer_name": h.name,
		"eventid":       strconv.Itoa(eventID),
		"task":          strconv.Itoa(task),
		"level":         "0",
		"keywords":      keywords,
		"data":          data.json(),
		"eid":           fmt.Sprintf("%010d", g.eid),
	}
}

// eventData builds osquery's data column, `{"EventData":{...}}`, with the
// fields in the order the event lists them and every value a string.
type eventData struct {
	b strings.Builder
	n int
}

func newEventData(fields int) *eventData {
	d := &eventData{}
	d.b.Grow(fields * 48)
	d.b.WriteString(`{"EventData":{`)
	return d
}

func (d *eventData) add(name, value string) {
	if d.n > 0 {
		d.b.WriteByte(',')
	}
	d.n++
	writeJSONString(&d.b, name)
	d.b.WriteByte(':')
	writeJSONString(&d.b, value)
}

func (d *eventData) json() string {
	d.b.WriteString("}}")
	return d.b.String()
}

// writeJSONString writes s as a JSON string. The generated values hold no
// control characters, so only quotes and backslashes need escapes.
func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

// sortByReceiveTime orders rows by `time`, stably, as osquery's event
// buffer holds them.
func sortByReceiveTime(rows []map[string]string) {
	type keyed struct {
		received int64
		row      map[string]string
	}
	sorted := make([]keyed, len(rows))
	for i, row := range rows {
		received, _ := strconv.ParseInt(row["time"], 10, 64)
		sorted[i] = keyed{received: received, row: row}
	}
	slices.SortStableFunc(sorted, func(a, b keyed) int { return cmp.Compare(a.received, b.received) })
	for i := range sorted {
		rows[i] = sorted[i].row
	}
}
