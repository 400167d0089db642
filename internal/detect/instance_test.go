package detect_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
)

// etwChild returns the ETW record of the process child(578ms) describes: pid
// and parent pid known, sequence numbers as instance keys, no parent path,
// 100 ns time a little after Sysmon's millisecond, and the header pid.
func etwChild(edits ...func(*detect.ProcessStart)) detect.ProcessStart {
	p := child(578*time.Millisecond, func(p *detect.ProcessStart) {
		p.Instance = detect.InstanceKindETW + "4711"
		p.ParentInstance = detect.InstanceKindETW + "76"
		p.ParentPath = ""
		p.Time = detect.Timestamp{UnixNano: base.Add(578*time.Millisecond + 4321*100).UnixNano(), Resolution: detect.ResolutionFiletime}
		p.HeaderPID = 704
		p.Sources = []string{detect.SourceETW}
	})
	for _, edit := range edits {
		edit(&p)
	}
	return p
}

func TestInstanceKind(t *testing.T) {
	t.Parallel()

	require.Equal(t, "", detect.InstanceKind("{d273d0f0-e865-5f64-0b00-000000000800}"))
	require.Equal(t, "etw:", detect.InstanceKind("etw:4711"))
	require.Equal(t, "etw:", detect.InstanceKind(detect.InstanceKindETW+"1"))
	require.Equal(t, "", detect.InstanceKind(""))
}

// TestMergeETWWithSysmonAndSecurity merges the three records of one child:
// ETW's sequence numbers and Sysmon's GUIDs are keys of different kinds, so
// they do not stop the merge, and the merged record keeps both.
func TestMergeETWWithSysmonAndSecurity(t *testing.T) {
	t.Parallel()

	sysmon := child(578*time.Millisecond, func(p *detect.ProcessStart) { p.PID = detect.UnknownPID })
	etw := etwChild()
	security := securityChild(func(p *detect.ProcessStart) { p.Cmdline = sysmon.Cmdline })

	got := detect.MergeProcesses([]detect.ProcessStart{sysmon, security, etw})
	require.Len(t, got, 1)

	merged := got[0]
	require.Equal(t, []string{"etw", "security", "sysmon"}, merged.Sources)
	require.Equal(t, etw.Time, merged.Time, "ETW's 100 ns time is the finest")
	require.Equal(t, int64(9028), merged.PID)
	require.Equal(t, int64(704), merged.HeaderPID)
	require.Equal(t, "etw:4711 {child-guid}", merged.Instance)
	require.Equal(t, "etw:76 {services-guid}", merged.ParentInstance)
	require.Equal(t, `C:\Windows\System32\services.exe`, merged.ParentPath, "filled from Security, which merges first by pid")
}

// TestMergeInstanceConflict keeps records apart whose keys of one kind
// differ, and merges records whose keys differ only in kind.
func TestMergeInstanceConflict(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		etw  func(*detect.ProcessStart)
		want int
	}{
		{name: "different kinds", etw: func(*detect.ProcessStart) {}, want: 1},
		{name: "same kind, same key", etw: func(p *detect.ProcessStart) { p.Instance = "{child-guid}" }, want: 1},
		{name: "same kind, other key", etw: func(p *detect.ProcessStart) { p.Instance = "{other-guid}" }, want: 2},
		{name: "same kind, other parent", etw: func(p *detect.ProcessStart) { p.ParentInstance = "{other-services-guid}" }, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := detect.MergeProcesses([]detect.ProcessStart{child(578 * time.Millisecond), etwChild(tt.etw)})
			require.Len(t, got, tt.want)
		})
	}
}

// TestDetectETWChildWithSysmonConnection pairs an ETW start with a Sysmon
// connection of the same parent pid although their instance keys are of
// different kinds.
func TestDetectETWChildWithSysmonConnection(t *testing.T) {
	t.Parallel()

	got := detect.Detect([]detect.ProcessStart{etwChild()}, []detect.Connection{conn(0)}, detect.DefaultOptions())
	require.Len(t, got, 1)
	require.Equal(t, detect.PrecisionMillisecond, got[0].Precision, "the coarser of ETW's 100 ns and Sysmon's ms")
	require.Equal(t, `C:\Windows\system32\services.exe`, got[0].Process.ParentPath, "filled from the connection")
	require.Equal(t, "etw:76 {services-guid}", got[0].Process.ParentInstance)
}

// TestDetectETWAndSysmonWithoutConnectionPID covers the forwarded Sysmon
// events without ProcessId: the connection is found only through the
// parent's GUID, which the merged child keeps beside ETW's key.
func TestDetectETWAndSysmonWithoutConnectionPID(t *testing.T) {
	t.Parallel()

	procs := []detect.ProcessStart{
		child(578*time.Millisecond, func(p *detect.ProcessStart) { p.PID = detect.UnknownPID }),
		etwChild(),
	}
	conns := []detect.Connection{conn(0, func(c *detect.Connection) { c.PID = detect.UnknownPID })}

	got := detect.Detect(procs, conns, detect.DefaultOptions())
	require.Len(t, got, 1)
	require.Equal(t, []string{"etw", "sysmon"}, got[0].Process.Sources)
	require.Equal(t, int64(9028), got[0].Process.PID)
	require.Equal(t, 1, got[0].ConnectionCount)
}

// TestDetectSharedKeysCountedOnce finds a connection through two shared
// instance keys, once per key, and must count it once.
func TestDetectSharedKeysCountedOnce(t *testing.T) {
	t.Parallel()

	procs := []detect.ProcessStart{child(578*time.Millisecond, func(p *detect.ProcessStart) {
		p.ParentPID = detect.UnknownPID
		p.ParentInstance = "{services-guid} etw:76"
	})}
	conns := []detect.Connection{conn(0, func(c *detect.Connection) {
		c.PID = detect.UnknownPID
		c.Instance = "etw:76 {services-guid}"
	})}

	got := detect.Detect(procs, conns, detect.DefaultOptions())
	require.Len(t, got, 1)
	require.Equal(t, 1, got[0].ConnectionCount)
}

// TestDetectInstanceKindsConflict rejects a connection whose key of one kind
// differs from the child's parent key of that kind, even when another
// kind's keys agree.
func TestDetectInstanceKindsConflict(t *testing.T) {
	t.Parallel()

	procs := []detect.ProcessStart{child(578*time.Millisecond, func(p *detect.ProcessStart) {
		p.ParentInstance = "{services-guid} etw:76"
	})}
	conns := []detect.Connection{conn(0, func(c *detect.Connection) { c.Instance = "etw:77 {services-guid}" })}

	require.Empty(t, detect.Detect(procs, conns, detect.DefaultOptions()))
}
