package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// extensionFlags holds the parsed extension command line.
type extensionFlags struct {
	// socket, timeout, interval and verbose are the flags osqueryd passes.
	socket   string
	timeout  time.Duration
	interval time.Duration
	verbose  bool

	generateTimeout time.Duration
	window          time.Duration
	parentNames     []string
	includeLoopback bool
	clockTolerance  time.Duration
	lookback        time.Duration
	sources         string
	// maxRowsPerSource caps the rows read from each event source in one
	// table call.
	maxRowsPerSource int
}

// Values of --sources.
const (
	sourcesAuto    = "auto"
	sourcesWindows = "windows"
	sourcesUnix    = "unix"
	sourcesAll     = "all"
)

// tableConfig returns the remote_service_launches configuration that the
// flags select.
func (f extensionFlags) tableConfig(q osq.Querier, logger *slog.Logger) remoteservicelaunches.Config {
	options := detect.DefaultOptions()
	options.Window = f.window
	options.ParentNames = f.parentNames
	options.IncludeLoopback = f.includeLoopback
	options.ClockTolerance = f.clockTolerance
	return remoteservicelaunches.Config{
		Querier:          q,
		Options:          options,
		Lookback:         f.lookback,
		MaxRowsPerSource: f.maxRowsPerSource,
		Logger:           logger,
		Sources:          eventSources(f.sources),
	}
}

// eventSources returns the sources that a --sources value selects. Nil
// lets the table pick those of the platform it runs on.
func eventSources(selection string) []sources.Source {
	// The Unix tables have no host column, so the rows are attributed to
	// this computer, as the table does when it picks the sources itself.
	host, _ := os.Hostname()

	switch selection {
	case sourcesWindows:
		return sources.Windows()
	case sourcesUnix:
		return sources.Unix(host)
	case sourcesAll:
		return append(sources.Windows(), sources.Unix(host)...)
	default:
		return nil
	}
}

// envPrefix starts the name of every environment variable that sets a
// flag: SVCLAUNCH_ followed by the flag name in upper case with "_" for "-".
const envPrefix = "SVCLAUNCH_"

// envFlags are the flags that environment variables can set. osqueryd's
// extensions.load file holds only paths, so for an autoloaded extension
// the environment that osqueryd passes on is the only way to set them.
// osqueryd always passes socket, timeout and interval itself.
var envFlags = []string{"verbose", "generate-timeout", "window", "parent-name", "include-loopback", "clock-tolerance", "lookback", "sources", "max-rows-per-source"}

// envName returns the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newExtensionFlagSet defines the extension flags on a new flag set that
// writes into f. The defaults are set in f before the call.
func newExtensionFlagSet(f *extensionFlags) (*flag.FlagSet, *nameList) {
	fs := flag.NewFlagSet("svclaunch", flag.ContinueOnError)
	fs.SetOutput(io.Discard)

	fs.StringVar(&f.socket, "socket", "", "`PATH` of osqueryd's extension manager socket (osqueryd passes --extensions_socket)")
	fs.Var((*seconds)(&f.timeout), "timeout", "`SECONDS` to wait for the socket to respond to a ping at start-up, and the timeout of each call that registers or pings (osqueryd passes --extensions_timeout; also 1.5 or 1500ms)")
	fs.Var((*seconds)(&f.interval), "interval", "`SECONDS` between pings of osqueryd; the extension exits with status 1 when a ping fails (osqueryd passes --extensions_interval; also 1.5 or 1500ms)")
	fs.BoolVar(&f.verbose, "verbose", false, "log debug detail (osqueryd passes it when it runs with --verbose)")
	fs.Var(durationValue{&f.generateTimeout, "generate timeout", time.Second}, "generate-timeout", "longest `DURATION` of one table call from osqueryd, as a Go duration such as 90s; keep it below osqueryd's --thrift_timeout")
	fs.Var(durationValue{&f.window, "window", time.Nanosecond}, "window", "longest `DURATION` from the inbound connection to the child's start, as a Go duration such as 1s or 1500ms")
	names := &nameList{names: &f.parentNames}
	fs.Var(names, "parent-name", "image base `NAME` of the service control manager, compared case-insensitively; repeat the flag for several names")
	fs.BoolVar(&f.includeLoopback, "include-loopback", false, "also count connections from the host itself (127.0.0.0/8, ::1 and the host's own addresses)")
	fs.Var(durationValue{&f.clockTolerance, "clock tolerance", 0}, "clock-tolerance", "`DURATION` by which a child may start before its connection's timestamp, for sources that stamp connections late, as a Go duration such as 200ms")
	fs.Var(durationValue{&f.lookback, "lookback", time.Second}, "lookback", "how far back, as a Go `DURATION`, a query without a constraint on time reads the event tables")
	fs.Var(positiveInt{&f.maxRowsPerSource, "row cap"}, "max-rows-per-source", "maximum `ROWS` read from each event source in one table call, which bounds memory; when a source has more, the oldest are dropped, which is logged and shown in remote_service_launch_sources")
	fs.Func("sources", "`SET` of event tables to read: auto (those of this platform), windows (Sysmon and Security events in windows_events, ETW process starts in process_etw_events), unix (process_events and socket_events) or all (default auto)", func(value string) error {
		switch value {
		case sourcesAuto, sourcesWindows, sourcesUnix, sourcesAll:
			f.sources = value
			return nil
		default:
			return fmt.Errorf("invalid source set %q: use auto, windows, unix or all", value)
		}
	})
	return fs, names
}

// defaultExtensionFlags returns the values used when neither a flag nor an
// environment variable sets one.
func defaultExtensionFlags() extensionFlags {
	options := detect.DefaultOptions()
	return extensionFlags{
		timeout:          extension.DefaultTimeout,
		interval:         extension.DefaultInterval,
		generateTimeout:  extension.DefaultGenerateTimeout,
		window:           options.Window,
		parentNames:      options.ParentNames,
		includeLoopback:  options.IncludeLoopback,
		clockTolerance:   options.ClockTolerance,
		lookback:         remoteservicelaunches.DefaultLookback,
		maxRowsPerSource: remoteservicelaunches.DefaultMaxRowsPerSource,
		sources:          sourcesAuto,
	}
}

// parseExtensionFlags parses the extension command line. Environment
// variables set values first and command-line flags override them. It
// returns flag.ErrHelp for -h and --help.
func parseExtensionFlags(args []string, lookup func(string) (string, bool)) (extensionFlags, error) {
	f := defaultExtensionFlags()
	fs, names := newExtensionFlagSet(&f)

	for _, name := range envFlags {
		value, ok := lookup(envName(name))
		if !ok {
			continue
		}
		var err error
		if name == "parent-name" {
			err = names.setFromEnv(value)
		} else {
			err = fs.Set(name, value)
		}
		if err != nil {
			return f, fmt.Errorf("invalid environment variable %s=%q: %w", envName(name), value, err)
		}
	}

	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q: the extension takes flags only; run \"svclaunch help\" for the commands", fs.Arg(0))
	}
	if f.socket == "" {
		return f, errors.New("missing --socket PATH: osqueryd passes it when it starts the extension; to run the extension by hand, pass the path of osqueryd's --extensions_socket, or run \"svclaunch help\" for the other commands")
	}
	return f, nil
}

// seconds is a flag.Value for osqueryd's --timeout and --interval, which
// osqueryd passes as whole seconds ("3"). A decimal number of seconds or a
// Go duration is also accepted.
type seconds time.Duration

func (s *seconds) String() string {
	if s == nil {
		return ""
	}
	return strconv.FormatFloat(time.Duration(*s).Seconds(), 'f', -1, 64)
}

func (s *seconds) Set(value string) error {
	d, err := time.ParseDuration(value)
	if err != nil {
		n, parseErr := strconv.ParseFloat(value, 64)
		if parseErr != nil {
			return fmt.Errorf("invalid number of seconds %q: give whole seconds such as 3, or a duration such as 1500ms", value)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d <= 0 {
		return fmt.Errorf("invalid number of seconds %q: give a value above 0", value)
	}
	*s = seconds(d)
	return nil
}

// durationValue is a flag.Value for a Go duration of at least min.
type durationValue struct {
	target *time.Duration
	label  string // the value's name in error messages
	min    time.Duration
}

func (d durationValue) String() string {
	if d.target == nil {
		return ""
	}
	return d.target.String()
}

func (d durationValue) Set(value string) error {
	parsed, err := time.ParseDuration(value)
	if err != nil {
		return fmt.Errorf("invalid %s %q: give a Go duration such as 1s or 1500ms", d.label, value)
	}
	if parsed < d.min {
		return fmt.Errorf("invalid %s %q: give at least %s", d.label, value, d.min)
	}
	*d.target = parsed
	return nil
}

// positiveInt is a flag.Value for an integer above 0.
type positiveInt struct {
	target *int
	what   string
}

func (p positiveInt) String() string {
	if p.target == nil {
		return ""
	}
	return strconv.Itoa(*p.target)
}

func (p positiveInt) Set(value string) error {
	n, err := strconv.Atoi(value)
	if err != nil || n <= 0 {
		return fmt.Errorf("invalid %s %q: give a whole number above 0", p.what, value)
	}
	*p.target = n
	return nil
}

// nameList is the flag.Value of --parent-name. The first name given on the
// command line replaces the default or the environment's list, and later
// ones add to it.
type nameList struct {
	names    *[]string
	replaced bool
}

func (l *nameList) String() string {
	if l == nil || l.names == nil {
		return ""
	}
	return strings.Join(*l.names, ",")
}

func (l *nameList) Set(value string) error {
	name, err := parseParentName(value)
	if err != nil {
		return err
	}
	if !l.replaced {
		*l.names = nil
		l.replaced = true
	}
	*l.names = append(*l.names, name)
	return nil
}

// setFromEnv replaces the list with the comma-separated names of value.
// Command-line flags given later replace it in turn.
func (l *nameList) setFromEnv(value string) error {
	var names []string
	for _, part := range strings.Split(value, ",") {
		name, err := parseParentName(part)
		if err != nil {
			return err
		}
		names = append(names, name)
	}
	*l.names = names
	return nil
}

func parseParentName(value string) (string, error) {
	name := strings.TrimSpace(value)
	if name == "" || strings.ContainsAny(name, `\/`) {
		return "", fmt.Errorf("invalid parent name %q: give an image base name such as services.exe", value)
	}
	return name, nil
}
