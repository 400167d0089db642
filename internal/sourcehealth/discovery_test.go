package sourcehealth_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
)

func TestDiscoveryQueries(t *testing.T) {
	t.Parallel()

	q := &recordingQuerier{next: openEngine(t)}
	sourcehealth.NewDiscovery(q, sourcehealth.DiscoveryOptions{}).Snapshot(t.Context())
	require.Equal(t, []string{
		"SELECT name FROM osquery_registry WHERE registry = 'table' AND name IN ('process_etw_events','process_events','socket_events','time','windows_events')",
		"SELECT name, publisher, type, active FROM osquery_events",
		"SELECT name, value FROM osquery_flags WHERE name IN ('disable_events','enable_windows_events_publisher','enable_windows_events_subscriber'," +
			"'windows_event_channels','enable_process_etw_events','disable_audit','audit_allow_process_events','audit_allow_sockets','audit_allow_accept_socket_events')",
	}, q.sent())
}

// TestDiscoveryUnknownState checks that an engine without osquery's own
// rows, like an offline hunt, leaves every source usable.
func TestDiscoveryUnknownState(t *testing.T) {
	t.Parallel()

	snapshot := sourcehealth.NewDiscovery(openEngine(t), sourcehealth.DiscoveryOptions{}).Snapshot(t.Context())
	require.Empty(t, snapshot.Errors)
	for _, source := range []string{"sysmon", "security", "etw", "process_events", "socket_events", "custom"} {
		a := snapshot.Check(source)
		require.True(t, a.Usable(), source)
		require.Equal(t, sourcehealth.Unknown, a.TableExists, source)
		require.Equal(t, sourcehealth.Unknown, a.SubscriberActive, source)
		require.Equal(t, sourcehealth.Unknown, a.PublisherActive, source)
		require.Empty(t, a.Hint, source)
	}
}

func TestDiscoveryCheck(t *testing.T) {
	t.Parallel()

	windowsTables := []string{"windows_events", "process_etw_events"}
	allOn := []string{
		"disable_events", "false",
		"enable_windows_events_publisher", "true",
		"enable_windows_events_subscriber", "true",
		"windows_event_channels", "System,Application,Setup,Security,Microsoft-Windows-Sysmon/Operational",
		"enable_process_etw_events", "true",
	}
	with := func(nameValues ...string) []string {
		out := append([]string{}, allOn...)
		for i := 0; i+1 < len(nameValues); i += 2 {
			for j := 0; j+1 < len(out); j += 2 {
				if out[j] == nameValues[i] {
					out[j+1] = nameValues[i+1]
				}
			}
		}
		return out
	}

	type want struct {
		usable, missing bool
		hint            string
	}
	tests := []struct {
		name   string
		tables []string
		flags  []string
		setup  func(t *testing.T, e *engine.Engine)
		source string
		want   want
	}{
		{name: "etw on", tables: windowsTables, flags: allOn, source: "etw", want: want{usable: true}},
		{name: "etw table missing", tables: []string{"windows_events"}, flags: allOn, source: "etw",
			want: want{missing: true, hint: "process_etw_events needs osquery 5.8 or later on Windows"}},
		{name: "etw flag off", tables: windowsTables, flags: with("enable_process_etw_events", "false"), source: "etw",
			want: want{hint: "set --enable_process_etw_events=true in osquery's flags"}},
		{name: "events disabled", tables: windowsTables, flags: with("disable_events", "true"), source: "security",
			want: want{hint: "--disable_events=false"}},
		{name: "publisher flag off", tables: windowsTables, flags: with("enable_windows_events_publisher", "false"), source: "sysmon",
			want: want{hint: "set --enable_windows_events_publisher=true in osquery's flags"}},
		{name: "both windows flags off", tables: windowsTables,
			flags:  with("enable_windows_events_publisher", "false", "enable_windows_events_subscriber", "0"),
			source: "security",
			want:   want{hint: "set --enable_windows_events_publisher=true --enable_windows_events_subscriber=true in"}},
		{name: "sysmon channel not listed", tables: windowsTables, flags: with("windows_event_channels", "System,Application,Setup,Security"), source: "sysmon",
			want: want{hint: `add Microsoft-Windows-Sysmon/Operational to --windows_event_channels (now "System,Application,Setup,Security")`}},
		{name: "security listed with quotes and spaces", tables: windowsTables,
			flags: with("windows_event_channels", `"System", 'security' ,Microsoft-Windows-Sysmon/Operational`), source: "security", want: want{usable: true}},
		{name: "security channel not listed", tables: windowsTables, flags: with("windows_event_channels", "Microsoft-Windows-Sysmon/Operational"), source: "security",
			want: want{hint: "add Security to --windows_event_channels"}},
		{name: "subscriber not running", tables: windowsTables, flags: allOn, source: "etw",
			setup: func(t *testing.T, e *engine.Engine) {
				subscriber(t, e, "process_etw_events", "etw_process_publisher", "0", "1")
			},
			want: want{hint: "osquery's process_etw_events event subscriber is not running"}},
		{name: "publisher not running", tables: windowsTables, flags: allOn, source: "sysmon",
			setup: func(t *testing.T, e *engine.Engine) {
				subscriber(t, e, "windows_events", "WindowsEventLogPublisher", "1", "0")
			},
			want: want{hint: "osquery's WindowsEventLogPublisher event publisher is not running"}},
		{name: "subscriber running", tables: windowsTables, flags: allOn, source: "sysmon",
			setup: func(t *testing.T, e *engine.Engine) {
				subscriber(t, e, "windows_events", "WindowsEventLogPublisher", "1", "1")
			},
			want: want{usable: true}},
		{name: "linux audit off", tables: []string{"process_events", "socket_events"}, flags: []string{"disable_audit", "true"}, source: "process_events",
			want: want{hint: "set --disable_audit=false in osquery's flags"}},
		{name: "linux sockets off", tables: []string{"process_events", "socket_events"}, flags: []string{"disable_audit", "false", "audit_allow_sockets", "false"},
			source: "socket_events", want: want{hint: "set --audit_allow_sockets=true in osquery's flags"}},
		{name: "socket_events on windows", tables: windowsTables, flags: allOn, source: "socket_events",
			want: want{missing: true, hint: "osquery has socket_events only on Linux and macOS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := openEngine(t)
			registryTables(t, e, tt.tables...)
			flags(t, e, tt.flags...)
			if tt.setup != nil {
				tt.setup(t, e)
			}

			a := sourcehealth.NewDiscovery(e, sourcehealth.DiscoveryOptions{}).Snapshot(t.Context()).Check(tt.source)
			require.Equal(t, tt.want.usable, a.Usable(), "usable: %s", a.Hint)
			require.Equal(t, tt.want.missing, a.Missing(), "missing: %s", a.Hint)
			require.Equal(t, !tt.want.usable && !tt.want.missing, a.Disabled, "disabled: %s", a.Hint)
			if tt.want.hint == "" {
				require.Empty(t, a.Hint)
			} else {
				require.Contains(t, a.Hint, tt.want.hint)
			}
		})
	}
}

func TestDiscoveryActiveStates(t *testing.T) {
	t.Parallel()

	e := openEngine(t)
	subscriber(t, e, "windows_events", "WindowsEventLogPublisher", "1", "1")
	subscriber(t, e, "process_etw_events", "etw_process_publisher", "-1", "0")
	snapshot := sourcehealth.NewDiscovery(e, sourcehealth.DiscoveryOptions{}).Snapshot(t.Context())

	sysmon := snapshot.Check("sysmon")
	require.Equal(t, sourcehealth.Yes, sysmon.SubscriberActive)
	require.Equal(t, sourcehealth.Yes, sysmon.PublisherActive)
	require.Equal(t, "1", sysmon.SubscriberActive.Column())

	etw := snapshot.Check("etw")
	require.Equal(t, sourcehealth.Unknown, etw.SubscriberActive, "-1 means osquery has no such plugin")
	require.Equal(t, sourcehealth.No, etw.PublisherActive)
	require.Equal(t, "-1", etw.SubscriberActive.Column())
	require.Equal(t, "0", etw.PublisherActive.Column())
	require.True(t, etw.Disabled)
}

// TestDiscoveryCache reuses a snapshot within the TTL and reads osquery
// again after it, or after Invalidate.
func TestDiscoveryCache(t *testing.T) {
	t.Parallel()

	now := time.Unix(1600618616, 0)
	q := &recordingQuerier{next: openEngine(t)}
	d := sourcehealth.NewDiscovery(q, sourcehealth.DiscoveryOptions{TTL: time.Minute, Now: func() time.Time { return now }})

	first := d.Snapshot(t.Context())
	require.Len(t, q.sent(), 3)

	now = now.Add(59 * time.Second)
	require.Same(t, first, d.Snapshot(t.Context()))
	require.Len(t, q.sent(), 3, "within the TTL")

	now = now.Add(time.Second)
	second := d.Snapshot(t.Context())
	require.NotSame(t, first, second)
	require.Len(t, q.sent(), 6, "after the TTL")

	d.Invalidate()
	d.Snapshot(t.Context())
	require.Len(t, q.sent(), 9, "after Invalidate")

	now = now.Add(-time.Hour)
	d.Snapshot(t.Context())
	require.Len(t, q.sent(), 12, "after the clock went back")
}

// TestDiscoveryQueryFailure treats what a failing query would have shown
// as unknown and reports the failure.
func TestDiscoveryQueryFailure(t *testing.T) {
	t.Parallel()

	e := openEngine(t)
	registryTables(t, e, "windows_events")
	flags(t, e, "enable_process_etw_events", "false")

	q := &recordingQuerier{next: e, fail: "osquery_flags"}
	snapshot := sourcehealth.NewDiscovery(q, sourcehealth.DiscoveryOptions{}).Snapshot(t.Context())
	require.Len(t, snapshot.Errors, 1)
	require.Contains(t, snapshot.Errors[0], "reading osquery_flags: no such table: osquery_flags")

	sysmon := snapshot.Check("sysmon")
	require.True(t, sysmon.Usable(), "the flags are unknown, the registry still read")
	require.Equal(t, sourcehealth.Yes, sysmon.TableExists)
	require.True(t, snapshot.Check("etw").Missing())
}
