package detect_test

import (
	"cmp"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// base is the connection time of the Empire PsExec recording:
// 2020-09-20 16:16:56.019 UTC.
var base = time.Date(2020, 9, 20, 16, 16, 56, 19_000_000, time.UTC)

func ms(t time.Time) detect.Timestamp {
	return detect.Timestamp{UnixNano: t.UnixNano(), Resolution: detect.ResolutionMillisecond}
}

func seconds(t time.Time) detect.Timestamp {
	return detect.Timestamp{UnixNano: t.Truncate(time.Second).UnixNano(), Resolution: detect.ResolutionSecond}
}

// child returns the Sysmon record of cmd.exe started by services.exe (pid
// 704) on WORKSTATION6 at base plus delay, changed by edits.
func child(delay time.Duration, edits ...func(*detect.ProcessStart)) detect.ProcessStart {
	p := detect.ProcessStart{
		Host:           "WORKSTATION6",
		PID:            9028,
		Instance:       "{child-guid}",
		ParentPID:      704,
		ParentInstance: "{services-guid}",
		ParentPath:     `C:\Windows\system32\services.exe`,
		Path:           `C:\Windows\System32\cmd.exe`,
		Cmdline:        `cmd.exe /C start /b powershell -noP -sta -w 1 -enc SQBGACgA`,
		Username:       `NT AUTHORITY\SYSTEM`,
		Time:           ms(base.Add(delay)),
		Sources:        []string{detect.SourceSysmon},
	}
	for _, edit := range edits {
		edit(&p)
	}
	return p
}

// conn returns the Sysmon record of the inbound RPC connection from
// WORKSTATION5 to services.exe at base plus offset, changed by edits.
func conn(offset time.Duration, edits ...func(*detect.Connection)) detect.Connection {
	c := detect.Connection{
		Host:          "WORKSTATION6",
		PID:           704,
		Instance:      "{services-guid}",
		Path:          `C:\Windows\system32\services.exe`,
		Inbound:       true,
		Protocol:      "tcp",
		LocalAddress:  "172.18.39.6",
		LocalPort:     49726,
		RemoteAddress: "172.18.39.5",
		RemotePort:    56608,
		Time:          ms(base.Add(offset)),
		Sources:       []string{detect.SourceSysmon},
	}
	for _, edit := range edits {
		edit(&c)
	}
	return c
}

func TestDetectTimeBoundaries(t *testing.T) {
	t.Parallel()

	wholeSeconds := func(s int) func(*detect.ProcessStart) {
		return func(p *detect.ProcessStart) {
			p.Time = detect.Timestamp{UnixNano: int64(s) * int64(time.Second), Resolution: detect.ResolutionSecond}
		}
	}
	connAtSeconds := func(s int) func(*detect.Connection) {
		return func(c *detect.Connection) {
			c.Time = detect.Timestamp{UnixNano: int64(s) * int64(time.Second), Resolution: detect.ResolutionSecond}
		}
	}
	connAt := func(nanos int64) func(*detect.Connection) {
		return func(c *detect.Connection) {
			c.Time = detect.Timestamp{UnixNano: nanos, Resolution: detect.ResolutionMillisecond}
		}
	}

	tests := []struct {
		name      string
		proc      detect.ProcessStart
		conn      detect.Connection
		tolerance time.Duration
		match     bool
		delay     int64
		precision string
	}{
		{name: "ms 0", proc: child(0), conn: conn(0), match: true, delay: 0, precision: "ms"},
		{name: "ms 1", proc: child(time.Millisecond), conn: conn(0), match: true, delay: 1, precision: "ms"},
		{name: "ms 999", proc: child(999 * time.Millisecond), conn: conn(0), match: true, delay: 999, precision: "ms"},
		{name: "ms 1000", proc: child(time.Second), conn: conn(0), match: true, delay: 1000, precision: "ms"},
		{name: "ms 1001", proc: child(1001 * time.Millisecond), conn: conn(0)},
		{name: "ms -1", proc: child(-time.Millisecond), conn: conn(0)},
		{name: "s 10 and 11", proc: child(0, wholeSeconds(11)), conn: conn(0, connAtSeconds(10)), match: true, delay: 1000, precision: "s"},
		{name: "s 10 and 10", proc: child(0, wholeSeconds(10)), conn: conn(0, connAtSeconds(10)), match: true, delay: 0, precision: "s"},
		{name: "s 10 and 12", proc: child(0, wholeSeconds(12)), conn: conn(0, connAtSeconds(10))},
		{name: "s 11 and 10", proc: child(0, wholeSeconds(10)), conn: conn(0, connAtSeconds(11))},
		{name: "ms 10.900 and s 11", proc: child(0, wholeSeconds(11)), conn: conn(0, connAt(10_900_000_000)), match: true, delay: 100, precision: "s"},
		{name: "ms 9.999 and s 11", proc: child(0, wholeSeconds(11)), conn: conn(0, connAt(9_999_000_000))},
		{name: "tolerance -300", proc: child(-300 * time.Millisecond), conn: conn(0), tolerance: 500 * time.Millisecond, match: true, delay: 0, precision: "ms"},
		{name: "no tolerance -300", proc: child(-300 * time.Millisecond), conn: conn(0)},
		{name: "tolerance -501", proc: child(-501 * time.Millisecond), conn: conn(0), tolerance: 500 * time.Millisecond},
		{
			name: "100ns 1000",
			proc: child(0, func(p *detect.ProcessStart) {
				p.Time = detect.Timestamp{UnixNano: base.Add(time.Second).UnixNano(), Resolution: detect.ResolutionFiletime}
			}),
			conn: conn(0, func(c *detect.Connection) {
				c.Time = detect.Timestamp{UnixNano: base.UnixNano(), Resolution: detect.ResolutionFiletime}
			}),
			match: true, delay: 1000, precision: "100ns",
		},
		{
			name: "100ns 1000.0001",
			proc: child(0, func(p *detect.ProcessStart) {
				p.Time = detect.Timestamp{UnixNano: base.Add(time.Second + 100).UnixNano(), Resolution: detect.ResolutionFiletime}
			}),
			conn: conn(0, func(c *detect.Connection) {
				c.Time = detect.Timestamp{UnixNano: base.UnixNano(), Resolution: detect.ResolutionFiletime}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			// A whole-second child and connection on another host widen
			// the ranges that Detect scans, so that the rule alone decides.
			elsewhere := func(p *detect.ProcessStart) { p.Host, p.Time = "WORKSTATION9", seconds(base) }
			connElsewhere := func(c *detect.Connection) { c.Host, c.Time = "WORKSTATION9", seconds(base.Add(-time.Hour)) }
			procs := []detect.ProcessStart{tt.proc, child(0, elsewhere)}
			conns := []detect.Connection{tt.conn, conn(0, connElsewhere)}

			opts := detect.DefaultOptions()
			opts.ClockTolerance = tt.tolerance
			got := detect.Detect(procs, conns, opts)
			if !tt.match {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Equal(t, tt.delay, got[0].DelayMillis)
			require.Equal(t, tt.precision, got[0].Precision)
			require.Equal(t, 1, got[0].ConnectionCount)
		})
	}
}

func TestDetectParentNames(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		parentPath string
		connPath   string
		names      []string
		match      bool
	}{
		{name: "system32", parentPath: `C:\Windows\system32\services.exe`, match: true},
		{name: "upper case", parentPath: `C:\WINDOWS\System32\SERVICES.EXE`, match: true},
		{name: "device path", parentPath: `\device\harddiskvolume2\windows\system32\services.exe`, match: true},
		{name: "base name", parentPath: "services.exe", match: true},
		{name: "slashes", parentPath: "C:/Windows/System32/services.exe", match: true},
		{name: "explorer", parentPath: `C:\Windows\explorer.exe`},
		{name: "longer name", parentPath: `C:\Windows\system32\services.exe.bak`},
		{name: "directory", parentPath: `C:\services.exe\svchost.exe`},
		{name: "from connection", connPath: `\device\harddiskvolume2\windows\system32\services.exe`, match: true},
		{name: "connection other", connPath: `C:\Windows\System32\svchost.exe`},
		{name: "both unnamed", connPath: ""},
		{name: "custom unix", parentPath: "/usr/sbin/sshd", names: []string{"sshd"}, match: true},
		{name: "custom excludes default", parentPath: `C:\Windows\system32\services.exe`, names: []string{"sshd"}},
		{name: "custom list", parentPath: `C:\Tools\SvcHost2.EXE`, names: []string{"sshd", "svchost2.exe"}, match: true},
		{name: "empty list", parentPath: `C:\Windows\system32\services.exe`, names: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			opts := detect.DefaultOptions()
			if tt.names != nil {
				opts.ParentNames = tt.names
			}
			proc := child(500*time.Millisecond, func(p *detect.ProcessStart) { p.ParentPath = tt.parentPath })
			c := conn(0, func(c *detect.Connection) { c.Path = tt.connPath })

			got := detect.Detect([]detect.ProcessStart{proc}, []detect.Connection{c}, opts)
			if !tt.match {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.NotEmpty(t, got[0].Process.ParentPath, "the parent path is filled from the connection")
		})
	}
}

func TestDetectLoopback(t *testing.T) {
	t.Parallel()

	own := map[string][]string{
		"WORKSTATION6": {"172.18.39.6", "fe80::a1b2:3c4d:5e6f:7081"},
		"WORKSTATION5": {"172.18.39.5"},
	}
	tests := []struct {
		name            string
		remote          string
		includeLoopback bool
		match           bool
	}{
		{name: "remote host", remote: "172.18.39.5", match: true},
		{name: "127.0.0.1", remote: "127.0.0.1"},
		{name: "127.5.6.7", remote: "127.5.6.7"},
		{name: "::1", remote: "::1"},
		{name: "mapped loopback", remote: "::ffff:127.0.0.1"},
		{name: "mapped loopback 127.9", remote: "::ffff:127.9.0.1"},
		{name: "own address", remote: "172.18.39.6"},
		{name: "own mapped", remote: "::ffff:172.18.39.6"},
		{name: "own ipv6 long form", remote: "fe80:0:0:0:a1b2:3c4d:5e6f:7081"},
		{name: "own ipv6 with zone", remote: "fe80::a1b2:3c4d:5e6f:7081%11"},
		{name: "other ipv6", remote: "fe80:0:0:0:a1b2:3c4d:5e6f:7082", match: true},
		{name: "unparsable", remote: "WORKSTATION5", match: true},
		{name: "included 127.0.0.1", remote: "127.0.0.1", includeLoopback: true, match: true},
		{name: "included ::1", remote: "::1", includeLoopback: true, match: true},
		{name: "included own", remote: "172.18.39.6", includeLoopback: true, match: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			opts := detect.DefaultOptions()
			opts.HostAddresses = own
			opts.IncludeLoopback = tt.includeLoopback
			c := conn(0, func(c *detect.Connection) { c.RemoteAddress = tt.remote })

			got := detect.Detect([]detect.ProcessStart{child(578 * time.Millisecond)}, []detect.Connection{c}, opts)
			if !tt.match {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Equal(t, tt.remote, got[0].Connection.RemoteAddress)
		})
	}
}

func TestDetectConnectionKinds(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		conns []detect.Connection
	}{
		{name: "outbound", conns: []detect.Connection{conn(0, func(c *detect.Connection) { c.Inbound = false })}},
		{name: "after child", conns: []detect.Connection{conn(600 * time.Millisecond)}},
		{name: "too early", conns: []detect.Connection{conn(-time.Second)}},
		{name: "zero time", conns: []detect.Connection{conn(0, func(c *detect.Connection) { c.Time = detect.Timestamp{} })}},
		{name: "other process", conns: []detect.Connection{conn(0, func(c *detect.Connection) { c.PID, c.Instance = 4, "" })}},
		{name: "none", conns: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := detect.Detect([]detect.ProcessStart{child(578 * time.Millisecond)}, tt.conns, detect.DefaultOptions())
			require.Empty(t, got)
		})
	}
}

func TestDetectProcessInstances(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		proc  func(*detect.ProcessStart)
		conn  func(*detect.Connection)
		match bool
		// parent is the detection's parent pid when it is not 704.
		parent int64
	}{
		{name: "same pid and instance", match: true},
		{name: "other host same pid", proc: func(p *detect.ProcessStart) { p.Host = "WORKSTATION7" }},
		{name: "host case differs", proc: func(p *detect.ProcessStart) { p.Host = "workstation6" }},
		{name: "pid reused after reboot", proc: func(p *detect.ProcessStart) { p.ParentInstance = "{services-guid-after-reboot}" }},
		{name: "other parent pid", proc: func(p *detect.ProcessStart) { p.ParentPID = 708 }},
		{name: "child without instance", proc: func(p *detect.ProcessStart) { p.ParentInstance = "" }, match: true},
		{name: "connection without instance", conn: func(c *detect.Connection) { c.Instance = "" }, match: true},
		{name: "connection pid unknown", conn: func(c *detect.Connection) { c.PID = detect.UnknownPID }, match: true},
		{name: "parent pid unknown", proc: func(p *detect.ProcessStart) { p.ParentPID = detect.UnknownPID }, match: true},
		{
			name:   "both pids unknown",
			proc:   func(p *detect.ProcessStart) { p.ParentPID = detect.UnknownPID },
			conn:   func(c *detect.Connection) { c.PID = detect.UnknownPID },
			match:  true,
			parent: detect.UnknownPID,
		},
		{
			name:   "pid unknown, instance matches",
			proc:   func(p *detect.ProcessStart) { p.ParentPID = 708 },
			conn:   func(c *detect.Connection) { c.PID = detect.UnknownPID },
			match:  true,
			parent: 708,
		},
		{
			name: "pid unknown other instance",
			conn: func(c *detect.Connection) { c.PID, c.Instance = detect.UnknownPID, "{other-guid}" },
		},
		{
			name: "pid unknown no instance",
			conn: func(c *detect.Connection) { c.PID, c.Instance = detect.UnknownPID, "" },
		},
		{
			name: "parent pid unknown no instance",
			proc: func(p *detect.ProcessStart) { p.ParentPID, p.ParentInstance = detect.UnknownPID, "" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var procEdits []func(*detect.ProcessStart)
			var connEdits []func(*detect.Connection)
			if tt.proc != nil {
				procEdits = append(procEdits, tt.proc)
			}
			if tt.conn != nil {
				connEdits = append(connEdits, tt.conn)
			}
			proc := child(578*time.Millisecond, procEdits...)
			c := conn(0, connEdits...)

			got := detect.Detect([]detect.ProcessStart{proc}, []detect.Connection{c}, detect.DefaultOptions())
			if !tt.match {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			wantParent := cmp.Or(tt.parent, 704)
			require.Equal(t, wantParent, got[0].Process.ParentPID, "the parent pid is known or filled from the connection")
			require.Equal(t, "{services-guid}", got[0].Process.ParentInstance)
		})
	}
}

func TestDetectNearestConnection(t *testing.T) {
	t.Parallel()

	port := func(p int) func(*detect.Connection) {
		return func(c *detect.Connection) { c.RemotePort = p }
	}
	conns := []detect.Connection{
		conn(-300*time.Millisecond, port(50001)),
		conn(200*time.Millisecond, port(50002)),
		conn(-1500*time.Millisecond, port(50003)),
		conn(700*time.Millisecond, port(50004)),
		conn(300*time.Millisecond, port(50005), func(c *detect.Connection) { c.Inbound = false }),
	}

	got := detect.Detect([]detect.ProcessStart{child(500 * time.Millisecond)}, conns, detect.DefaultOptions())
	require.Len(t, got, 1)
	require.Equal(t, 50002, got[0].Connection.RemotePort)
	require.Equal(t, 2, got[0].ConnectionCount)
	require.Equal(t, int64(300), got[0].DelayMillis)
}

func TestDetectNearestAfterChild(t *testing.T) {
	t.Parallel()

	opts := detect.DefaultOptions()
	opts.ClockTolerance = 500 * time.Millisecond
	conns := []detect.Connection{
		conn(400*time.Millisecond, func(c *detect.Connection) { c.RemotePort = 50001 }),
		conn(200*time.Millisecond, func(c *detect.Connection) { c.RemotePort = 50002 }),
	}

	got := detect.Detect([]detect.ProcessStart{child(0)}, conns, opts)
	require.Len(t, got, 1)
	require.Equal(t, 50002, got[0].Connection.RemotePort)
	require.Equal(t, 2, got[0].ConnectionCount)
	require.Equal(t, int64(0), got[0].DelayMillis)
}

// TestDetectTwoSources feeds the child and the connection of the Empire
// PsExec recording as both Sysmon and Security report them: Sysmon without
// pids, Security in whole seconds, 5156 with the device path.
func TestDetectTwoSources(t *testing.T) {
	t.Parallel()

	sysmonChild := child(578*time.Millisecond, func(p *detect.ProcessStart) {
		p.PID = detect.UnknownPID
	})
	securityChild := child(0, func(p *detect.ProcessStart) {
		p.Instance, p.ParentInstance = "", ""
		p.ParentPath = `C:\Windows\System32\services.exe`
		p.Path = `C:\Windows\System32\CMD.EXE`
		p.Username = "WORKSTATION6$"
		p.Time = seconds(base.Add(time.Second))
		p.Sources = []string{detect.SourceSecurity}
	})
	sysmonConn := conn(0, func(c *detect.Connection) { c.PID = detect.UnknownPID })
	securityConn := conn(0, func(c *detect.Connection) {
		c.Instance = ""
		c.Path = `\device\harddiskvolume2\windows\system32\services.exe`
		c.Protocol = "TCP"
		c.Time = seconds(base)
		c.Sources = []string{detect.SourceSecurity}
	})

	got := detect.Detect(
		[]detect.ProcessStart{securityChild, sysmonChild},
		[]detect.Connection{sysmonConn, securityConn},
		detect.DefaultOptions())
	require.Len(t, got, 1)

	d := got[0]
	require.Equal(t, int64(9028), d.Process.PID, "pid recovered from the Security record")
	require.Equal(t, []string{"security", "sysmon"}, d.Process.Sources)
	require.Equal(t, base.Add(578*time.Millisecond).UnixNano(), d.Process.Time.UnixNano)
	require.Equal(t, detect.ResolutionMillisecond, d.Process.Time.Resolution)
	require.Equal(t, "{child-guid}", d.Process.Instance)
	require.Equal(t, `NT AUTHORITY\SYSTEM`, d.Process.Username)

	require.Equal(t, int64(704), d.Connection.PID, "pid recovered from the Security record")
	require.Equal(t, []string{"security", "sysmon"}, d.Connection.Sources)
	require.Equal(t, base.UnixNano(), d.Connection.Time.UnixNano)
	require.Equal(t, "{services-guid}", d.Connection.Instance)
	require.Equal(t, 1, d.ConnectionCount)
	require.Equal(t, int64(578), d.DelayMillis)
	require.Equal(t, "ms", d.Precision)
}

// Events loaded twice, as from overlapping exports, give one detection
// with the pid that only the Security record carries.
func TestDetectDuplicateEvents(t *testing.T) {
	t.Parallel()

	sysmonChild := child(578*time.Millisecond, func(p *detect.ProcessStart) { p.PID = detect.UnknownPID })
	securityChild := child(0, func(p *detect.ProcessStart) {
		p.Instance, p.ParentInstance = "", ""
		p.Time = detect.Timestamp{UnixNano: base.Add(578*time.Millisecond + 1234).UnixNano(), Resolution: detect.ResolutionFiletime}
		p.Sources = []string{detect.SourceSecurity}
	})
	sysmonConn := conn(0, func(c *detect.Connection) { c.PID = detect.UnknownPID })
	securityConn := conn(0, func(c *detect.Connection) {
		c.Instance = ""
		c.Time = detect.Timestamp{UnixNano: base.Add(1234).UnixNano(), Resolution: detect.ResolutionFiletime}
		c.Sources = []string{detect.SourceSecurity}
	})

	got := detect.Detect(
		[]detect.ProcessStart{sysmonChild, securityChild, sysmonChild, securityChild},
		[]detect.Connection{sysmonConn, securityConn, sysmonConn, securityConn},
		detect.DefaultOptions())
	require.Len(t, got, 1)
	require.Equal(t, int64(9028), got[0].Process.PID)
	require.Equal(t, []string{"security", "sysmon"}, got[0].Process.Sources)
	require.Equal(t, int64(704), got[0].Connection.PID)
	require.Equal(t, []string{"security", "sysmon"}, got[0].Connection.Sources)
	require.Equal(t, 1, got[0].ConnectionCount)
}

func TestDetectOrder(t *testing.T) {
	t.Parallel()

	onHost := func(host string, pid int64) func(*detect.ProcessStart) {
		return func(p *detect.ProcessStart) { p.Host, p.PID, p.Instance = host, pid, "" }
	}
	connOn := func(host string) func(*detect.Connection) {
		return func(c *detect.Connection) { c.Host = host }
	}
	procs := []detect.ProcessStart{
		child(900*time.Millisecond, onHost("B", 3)),
		child(100*time.Millisecond, onHost("B", 2)),
		child(100*time.Millisecond, onHost("B", 1)),
		child(500*time.Millisecond, onHost("A", 9)),
	}
	conns := []detect.Connection{conn(0, connOn("A")), conn(0, connOn("B"))}

	got := detect.Detect(procs, conns, detect.DefaultOptions())
	require.Len(t, got, 4)
	var order []string
	for _, d := range got {
		order = append(order, fmt.Sprintf("%s/%d", d.Process.Host, d.Process.PID))
	}
	require.Equal(t, []string{"A/9", "B/1", "B/2", "B/3"}, order)
}

func TestDetectInputUnchanged(t *testing.T) {
	t.Parallel()

	procs := []detect.ProcessStart{
		child(578*time.Millisecond, func(p *detect.ProcessStart) { p.PID = detect.UnknownPID }),
		child(0, func(p *detect.ProcessStart) {
			p.Instance, p.ParentInstance, p.Time = "", "", seconds(base)
			p.Sources = []string{detect.SourceSecurity}
		}),
	}
	conns := []detect.Connection{
		conn(0, func(c *detect.Connection) { c.PID = detect.UnknownPID }),
		conn(0, func(c *detect.Connection) {
			c.Instance, c.Time, c.Sources = "", seconds(base), []string{detect.SourceSecurity}
		}),
	}
	wantProcs := cloneProcesses(procs)
	wantConns := cloneConnections(conns)

	require.Len(t, detect.Detect(procs, conns, detect.DefaultOptions()), 1)
	require.Equal(t, wantProcs, procs)
	require.Equal(t, wantConns, conns)
}

func cloneProcesses(procs []detect.ProcessStart) []detect.ProcessStart {
	out := make([]detect.ProcessStart, len(procs))
	for i, p := range procs {
		p.Sources = append([]string(nil), p.Sources...)
		out[i] = p
	}
	return out
}

func cloneConnections(conns []detect.Connection) []detect.Connection {
	out := make([]detect.Connection, len(conns))
	for i, c := range conns {
		c.Sources = append([]string(nil), c.Sources...)
		out[i] = c
	}
	return out
}
