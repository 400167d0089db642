package detect_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// securityChild returns the Security 4688 record of the process that
// child(578ms) describes: pid known, no instance keys, whole seconds.
func securityChild(edits ...func(*detect.ProcessStart)) detect.ProcessStart {
	p := child(0, func(p *detect.ProcessStart) {
		p.Instance, p.ParentInstance = "", ""
		p.ParentPath = `C:\Windows\System32\services.exe`
		p.Username = "WORKSTATION6$"
		p.Time = seconds(base)
		p.Sources = []string{detect.SourceSecurity}
	})
	for _, edit := range edits {
		edit(&p)
	}
	return p
}

func TestMergeProcesses(t *testing.T) {
	t.Parallel()

	noPID := func(p *detect.ProcessStart) { p.PID = detect.UnknownPID }
	noInstance := func(p *detect.ProcessStart) { p.Instance, p.ParentInstance = "", "" }
	tests := []struct {
		name  string
		procs []detect.ProcessStart
		want  int
	}{
		{name: "same pid", procs: []detect.ProcessStart{child(578 * time.Millisecond), securityChild()}, want: 1},
		{name: "missing pid", procs: []detect.ProcessStart{child(578*time.Millisecond, noPID), securityChild()}, want: 1},
		{
			name: "image case differs",
			procs: []detect.ProcessStart{
				child(578*time.Millisecond, noPID),
				securityChild(func(p *detect.ProcessStart) { p.Path = `c:\windows\system32\CMD.exe` }),
			},
			want: 1,
		},
		{
			name: "image differs",
			procs: []detect.ProcessStart{
				child(578*time.Millisecond, noPID),
				securityChild(func(p *detect.ProcessStart) { p.Path = `C:\Windows\System32\cmd2.exe` }),
			},
			want: 2,
		},
		{
			name: "command line differs",
			procs: []detect.ProcessStart{
				child(578*time.Millisecond, noPID),
				securityChild(func(p *detect.ProcessStart) { p.Cmdline = "cmd.exe" }),
			},
			want: 2,
		},
		{
			name: "parent pid differs",
			procs: []detect.ProcessStart{
				child(578*time.Millisecond, noPID),
				securityChild(func(p *detect.ProcessStart) { p.ParentPID = 708 }),
			},
			want: 2,
		},
		{name: "other pid", procs: []detect.ProcessStart{child(0), securityChild(func(p *detect.ProcessStart) { p.PID = 9032 })}, want: 2},
		{name: "other host", procs: []detect.ProcessStart{child(0), securityChild(func(p *detect.ProcessStart) { p.Host = "WORKSTATION5" })}, want: 2},
		// securityChild covers [56 s, 57 s); child(d) starts at 56.019 s + d.
		{name: "gap 5 s", procs: []detect.ProcessStart{child(5981 * time.Millisecond), securityChild()}, want: 1},
		{name: "gap 5.001 s", procs: []detect.ProcessStart{child(5982 * time.Millisecond), securityChild()}, want: 2},
		{name: "gap 5 s no pid", procs: []detect.ProcessStart{child(5981*time.Millisecond, noPID), securityChild()}, want: 1},
		{name: "gap 5.001 s no pid", procs: []detect.ProcessStart{child(5982*time.Millisecond, noPID), securityChild()}, want: 2},
		{name: "security first", procs: []detect.ProcessStart{securityChild(), child(-980*time.Millisecond, noPID)}, want: 1},
		{name: "one source twice", procs: []detect.ProcessStart{child(0), child(time.Millisecond)}, want: 2},
		{name: "duplicate record", procs: []detect.ProcessStart{child(0), child(0)}, want: 1},
		{name: "duplicate without pid", procs: []detect.ProcessStart{child(0, noPID), child(0, noPID)}, want: 1},
		{name: "duplicate without pid or instance", procs: []detect.ProcessStart{child(0, noPID, noInstance), child(0, noPID, noInstance)}, want: 1},
		{name: "one source twice without pid", procs: []detect.ProcessStart{child(0, noPID), child(time.Millisecond, noPID)}, want: 2},
		{
			name: "one source without pid, other instance",
			procs: []detect.ProcessStart{
				child(0, noPID),
				child(0, noPID, func(p *detect.ProcessStart) { p.Instance = "{other-child-guid}" }),
			},
			want: 2,
		},
		{
			name: "one source without pid, other user",
			procs: []detect.ProcessStart{
				child(0, noPID, noInstance),
				child(0, noPID, noInstance, func(p *detect.ProcessStart) { p.Username = "WORKSTATION6$" }),
			},
			want: 2,
		},
		{
			name: "two sources loaded twice",
			procs: []detect.ProcessStart{
				child(578*time.Millisecond, noPID), securityChild(),
				child(578*time.Millisecond, noPID), securityChild(),
			},
			want: 1,
		},
		{
			name: "two sources with pid loaded twice",
			procs: []detect.ProcessStart{
				child(578 * time.Millisecond), securityChild(func(p *detect.ProcessStart) { p.Time = ms(base) }),
				child(578 * time.Millisecond), securityChild(func(p *detect.ProcessStart) { p.Time = ms(base) }),
			},
			want: 1,
		},
		{
			name: "three sources",
			procs: []detect.ProcessStart{
				child(578*time.Millisecond, noPID),
				securityChild(),
				child(578*time.Millisecond, func(p *detect.ProcessStart) {
					p.Instance, p.ParentInstance, p.ParentPath = detect.InstanceKindETW+"1234", detect.InstanceKindETW+"600", ""
					p.Time = detect.Timestamp{UnixNano: base.Add(578*time.Millisecond + 1234).UnixNano(), Resolution: detect.ResolutionFiletime}
					p.Sources = []string{detect.SourceETW}
				}),
			},
			want: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := detect.MergeProcesses(tt.procs)
			require.Len(t, got, tt.want)
		})
	}
}

// Two records of one source without a pid merge only when every field is
// equal: a record that differs in any one field is another process.
func TestMergeProcessesDuplicateEveryField(t *testing.T) {
	t.Parallel()

	record := child(0, func(p *detect.ProcessStart) {
		p.PID = detect.UnknownPID
		p.Instance, p.ParentInstance = "", ""
	})
	require.Len(t, detect.MergeProcesses([]detect.ProcessStart{record, record}), 1)

	fields := reflect.TypeFor[detect.ProcessStart]()
	for i := range fields.NumField() {
		name := fields.Field(i).Name
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			other := record
			other.Sources = slices.Clone(record.Sources)
			switch value := reflect.ValueOf(&other).Elem().Field(i); value.Interface().(type) {
			case string:
				value.SetString(value.String() + "2")
			case int64:
				value.SetInt(value.Int() + 1)
			case detect.Timestamp:
				other.Time.UnixNano += int64(time.Millisecond)
			case []string:
				other.Sources = append(other.Sources, detect.SourceETW)
			default:
				t.Fatalf("field %s has type %s, which this test cannot change: add a case", name, value.Type())
			}

			require.Len(t, detect.MergeProcesses([]detect.ProcessStart{record, other}), 2)
		})
	}
}

func TestMergeProcessesFields(t *testing.T) {
	t.Parallel()

	sysmon := child(578*time.Millisecond, func(p *detect.ProcessStart) {
		p.PID = detect.UnknownPID
		p.Username = ""
	})
	security := securityChild(func(p *detect.ProcessStart) {
		p.Cmdline = sysmon.Cmdline
		p.Sources = []string{detect.SourceSecurity, detect.SourceSecurity}
	})
	other := child(time.Hour, func(p *detect.ProcessStart) { p.PID = 1000 })

	got := detect.MergeProcesses([]detect.ProcessStart{other, security, sysmon})
	require.Len(t, got, 2)
	require.Equal(t, other, got[0], "a record without partner is returned as it is, in input order")

	merged := got[1]
	require.Equal(t, int64(9028), merged.PID)
	require.Equal(t, []string{"security", "sysmon"}, merged.Sources)
	require.Equal(t, sysmon.Time, merged.Time, "the finer time wins")
	require.Equal(t, sysmon.Instance, merged.Instance)
	require.Equal(t, sysmon.ParentInstance, merged.ParentInstance)
	require.Equal(t, sysmon.ParentPath, merged.ParentPath, "the finer record's fields win")
	require.Equal(t, "WORKSTATION6$", merged.Username, "an empty field is filled")
}

func TestMergeConnections(t *testing.T) {
	t.Parallel()

	security := func(edits ...func(*detect.Connection)) detect.Connection {
		c := conn(0, func(c *detect.Connection) {
			c.Instance = ""
			c.Path = `\device\harddiskvolume2\windows\system32\services.exe`
			c.Time = seconds(base.Add(time.Second))
			c.Sources = []string{detect.SourceSecurity}
		})
		for _, edit := range edits {
			edit(&c)
		}
		return c
	}
	noPID := func(c *detect.Connection) { c.PID = detect.UnknownPID }
	ipv6 := func(local, remote string) func(*detect.Connection) {
		return func(c *detect.Connection) { c.LocalAddress, c.RemoteAddress = local, remote }
	}

	tests := []struct {
		name  string
		conns []detect.Connection
		want  int
	}{
		{name: "same pid", conns: []detect.Connection{conn(0), security()}, want: 1},
		{name: "missing pid", conns: []detect.Connection{conn(0, noPID), security()}, want: 1},
		{name: "both without pid", conns: []detect.Connection{conn(0, noPID), security(noPID)}, want: 1},
		{name: "other pid", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.PID = 708 })}, want: 2},
		{name: "protocol case", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.Protocol = "TCP" })}, want: 1},
		{name: "other protocol", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.Protocol = "udp" })}, want: 2},
		{
			name: "ipv6 notations",
			conns: []detect.Connection{
				conn(0, ipv6("fe80:0:0:0:a1b2:3c4d:5e6f:7081", "fe80:0:0:0:1:2:3:4")),
				security(ipv6("fe80::a1b2:3c4d:5e6f:7081", "FE80::1:2:3:4")),
			},
			want: 1,
		},
		{
			name: "ipv4 mapped",
			conns: []detect.Connection{
				conn(0),
				security(ipv6("::ffff:172.18.39.6", "::ffff:172.18.39.5")),
			},
			want: 1,
		},
		{
			name:  "other local address",
			conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.LocalAddress = "172.18.39.7" })},
			want:  2,
		},
		{name: "other remote port", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.RemotePort = 56609 })}, want: 2},
		{name: "other local port", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.LocalPort = 49727 })}, want: 2},
		{name: "other direction", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.Inbound = false })}, want: 2},
		{name: "other host", conns: []detect.Connection{conn(0), security(func(c *detect.Connection) { c.Host = "WORKSTATION5" })}, want: 2},
		// security() covers [57 s, 58 s); conn(d) covers [56.019 s + d, 56.020 s + d).
		{name: "gap 5 s", conns: []detect.Connection{conn(-4020 * time.Millisecond), security()}, want: 1},
		{name: "gap 5.001 s", conns: []detect.Connection{conn(-4021 * time.Millisecond), security()}, want: 2},
		{name: "gap after 5 s", conns: []detect.Connection{conn(6981 * time.Millisecond), security()}, want: 1},
		{name: "gap after 5.001 s", conns: []detect.Connection{conn(6982 * time.Millisecond), security()}, want: 2},
		{name: "one source twice", conns: []detect.Connection{conn(0), conn(time.Millisecond)}, want: 2},
		{name: "duplicate record", conns: []detect.Connection{conn(0), conn(0)}, want: 1},
		{name: "duplicate without pid", conns: []detect.Connection{conn(0, noPID), conn(0, noPID)}, want: 1},
		{name: "one source twice without pid", conns: []detect.Connection{conn(0, noPID), conn(time.Millisecond, noPID)}, want: 2},
		{
			name:  "two sources loaded twice",
			conns: []detect.Connection{conn(0, noPID), security(), conn(0, noPID), security()},
			want:  1,
		},
		{
			name: "two sources with pid loaded twice",
			conns: []detect.Connection{
				conn(0), security(func(c *detect.Connection) { c.Time = ms(base.Add(time.Second)) }),
				conn(0), security(func(c *detect.Connection) { c.Time = ms(base.Add(time.Second)) }),
			},
			want: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := detect.MergeConnections(tt.conns)
			require.Len(t, got, tt.want)
		})
	}
}

func TestMergeConnectionsFields(t *testing.T) {
	t.Parallel()

	sysmon := conn(0, func(c *detect.Connection) {
		c.PID = detect.UnknownPID
		c.Path = ""
		c.LocalAddress, c.RemoteAddress = "fe80:0:0:0:a1b2:3c4d:5e6f:7081", "fe80:0:0:0:1:2:3:4"
	})
	security := conn(0, func(c *detect.Connection) {
		c.Instance = ""
		c.Path = `\device\harddiskvolume2\windows\system32\services.exe`
		c.LocalAddress, c.RemoteAddress = "fe80::a1b2:3c4d:5e6f:7081", "fe80::1:2:3:4"
		c.Time = seconds(base)
		c.Sources = []string{detect.SourceSecurity}
	})

	got := detect.MergeConnections([]detect.Connection{security, sysmon})
	require.Len(t, got, 1)
	require.Equal(t, int64(704), got[0].PID)
	require.Equal(t, []string{"security", "sysmon"}, got[0].Sources)
	require.Equal(t, sysmon.Time, got[0].Time)
	require.Equal(t, sysmon.Instance, got[0].Instance)
	require.Equal(t, security.Path, got[0].Path)
	require.Equal(t, sysmon.RemoteAddress, got[0].RemoteAddress, "the finer record's spelling is kept")
}
