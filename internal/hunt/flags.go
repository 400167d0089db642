package hunt

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/svclaunch/svclaunch/internal/output"
	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// config holds the parsed command line of hunt or query.
type config struct {
	// format is the output format; formatSet is false when --format was
	// not given and the format follows from whether stdout is a terminal.
	format    output.Format
	formatSet bool

	inputFormat telemetry.Format
	// defaultUTCOffset is --utc-offset OFFSET, for hosts whose offset
	// cannot be learned; hostUTCOffsets holds --utc-offset HOST=OFFSET.
	defaultUTCOffset *time.Duration
	hostUTCOffsets   map[string]time.Duration

	window          time.Duration
	clockTolerance  time.Duration
	includeLoopback bool
	parentNames     []string
	quiet           bool

	// since and until bound the hunt's `time` constraint (Unix seconds).
	since, until *int64

	// files are the inputs in command-line order; "-" is standard input.
	files []string
	// sql is the statement of query; sqlFile is --sql-file, whose content
	// replaces sql once read ("-" is standard input).
	sql     string
	sqlFile string
}

// usageError is a mistake on the command line; it exits with ExitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// command describes one subcommand for parsing and help.
type command struct {
	name     string // "hunt" or "query"
	synopsis string // the usage line after "svclaunch"
	about    string // description of the command for help
}

var huntCommand = command{
	name:     "hunt",
	synopsis: "svclaunch hunt [flags] [FILE...]",
	about: `Run the remote_service_launches detection (CAR-2014-03-005: services.exe accepts an
inbound network connection and, within the window, starts a child process) over recorded
telemetry and print one row per detection. FILE is an NXLog, python-evtx, ECS or osquery
results-log JSON-lines file, or an .evtx file, each optionally gzip-compressed; "-" reads
standard input. Flags may come before or after the files; "--" ends the flags.
Without FILE, hunt reads a bundled sample: an excerpt of an Empire PsExec recording
(OTRF Security-Datasets, MIT licence) that holds one detection.`,
}

var queryCommand = command{
	name:     "query",
	synopsis: "svclaunch query [flags] [--load FILE]... [FILE...] {SQL | --sql-file FILE}",
	about: `Load recorded telemetry into osquery's tables and run one SQL statement over them and
over the extension's tables, as osqueryi would, then print the rows. The SQL is the last
argument, or the content of --sql-file; files come from --load and from every other
argument. An argument that contains a space or a newline is never read as a flag, so SQL
may start with a "--" comment. "-" reads standard input. Without any file, query reads
the bundled sample that hunt uses.

Tables:
  remote_service_launches        the detections, one row per remotely launched child
  remote_service_launch_sources  one row per event source of the platforms the loaded
                                 telemetry holds: its status, event count and a hint on
                                 which events the recording lacks
  windows_events                 Windows events of every channel, such as Sysmon's and
                                 Security's
  process_etw_events             ETW process starts and stops, from osquery results logs
  process_events                 Linux and macOS process events, from osquery results logs
  socket_events                  Linux and macOS socket events, from osquery results logs
  processes                      running processes, from osquery results logs
  time                           unix_time is the newest time value of the loaded rows

Without a constraint on time, remote_service_launches reads the whole recording
(osqueryd would read the last hour of events).`,
}

// Exit codes, shared by hunt and query.
const (
	// ExitOK means the command ran to the end, with or without detections.
	ExitOK = 0
	// ExitRuntime means an input or output failed: a file that cannot be
	// read, content in no known format, a truncated file, a failed query.
	ExitRuntime = 1
	// ExitUsage means the command line is wrong: an unknown flag, an
	// invalid flag value or a missing argument.
	ExitUsage = 2
)

// parseFlags parses args for cmd. It returns flag.ErrHelp when help was
// requested, and a usageError for any mistake.
func parseFlags(cmd command, args []string, stdoutIsTerminal bool) (config, error) {
	var cfg config
	fs := newFlagSet(cmd, &cfg)

	positional, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err}
	}

	if !cfg.formatSet {
		cfg.format = output.FormatNDJSON
		if stdoutIsTerminal {
			cfg.format = output.FormatTable
		}
	}
	if cfg.since != nil && cfg.until != nil && *cfg.since > *cfg.until {
		return cfg, usagef("--since %d is after --until %d: swap them", *cfg.since, *cfg.until)
	}
	if len(cfg.parentNames) == 0 {
		cfg.parentNames = []string{defaultParentName}
	}

	switch cmd.name {
	case "hunt":
		cfg.files = positional
	case "query":
		if cfg.sqlFile != "" {
			cfg.files = append(cfg.files, positional...)
			break
		}
		if len(positional) == 0 {
			return cfg, usagef("missing SQL statement: give it as the last argument or with --sql-file, for example: svclaunch query --load events.json 'SELECT * FROM remote_service_launches'")
		}
		cfg.sql = positional[len(positional)-1]
		cfg.files = append(cfg.files, positional[:len(positional)-1]...)
		if strings.TrimSpace(cfg.sql) == "" {
			return cfg, usagef("the SQL statement is empty: give it as the last argument")
		}
		if err := checkSQLArgument(cfg.sql); err != nil {
			return cfg, err
		}
	}

	stdinCount := 0
	if cfg.sqlFile == "-" {
		stdinCount++
	}
	for _, f := range cfg.files {
		if f == "-" {
			stdinCount++
		}
	}
	if stdinCount > 1 {
		return cfg, usagef(`standard input ("-") is given %d times: give it once`, stdinCount)
	}
	return cfg, nil
}

// sqlKeyword matches a keyword that starts an SQL statement osquery runs,
// or FROM, so that a misspelt SELECT still reaches SQLite and gets its
// syntax error.
var sqlKeyword = regexp.MustCompile(`(?i)\b(select|with|values|pragma|explain|from)\b`)

// checkSQLArgument returns a usage error when the last argument of query
// is not SQL: a file name, or text without an SQL keyword. Without this
// check, a forgotten statement would run the file name as SQL over the
// bundled sample.
func checkSQLArgument(arg string) error {
	shown := arg
	if len(shown) > 60 {
		shown = shown[:57] + "..."
	}
	if !strings.ContainsAny(arg, "\n\r") {
		if info, err := os.Stat(arg); err == nil && !info.IsDir() {
			return usagef("missing SQL statement: the last argument %q is a file; give the SQL after it, or with --sql-file FILE", shown)
		}
	}
	if !sqlKeyword.MatchString(arg) {
		return usagef("missing SQL statement: the last argument %q contains no SQL keyword (SELECT, WITH, VALUES, PRAGMA, EXPLAIN or FROM); give the SQL as the last argument, or with --sql-file FILE", shown)
	}
	return nil
}

// maxSQLFileBytes caps --sql-file, so that a telemetry file given there by
// mistake fails at once instead of being read whole.
const maxSQLFileBytes = 1 << 20

// readSQLFile returns the statement in path ("-" reads stdin). An empty
// statement is a usage error.
func readSQLFile(path string, stdin io.Reader) (string, error) {
	r := stdin
	name := stdinName
	if path != "-" {
		f, _, err := openFile(path)
		if err != nil {
			return "", fmt.Errorf("reading --sql-file: %w", err)
		}
		defer f.Close()
		r, name = f, path
	}

	content, err := io.ReadAll(io.LimitReader(r, maxSQLFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading --sql-file %s: %w", name, err)
	}
	if len(content) > maxSQLFileBytes {
		return "", fmt.Errorf("reading --sql-file %s: the file is larger than 1 MiB, so it is not one SQL statement; give telemetry with --load", name)
	}

	sql := strings.TrimPrefix(string(content), utf8BOM)
	if strings.TrimSpace(sql) == "" {
		return "", usagef("the SQL statement in --sql-file %s is empty", name)
	}
	return sql, nil
}

// utf8BOM is the byte order mark that Windows editors write at the start
// of UTF-8 files.
const utf8BOM = "\ufeff"

// defaultParentName is the service control manager's image name.
const defaultParentName = "services.exe"

// defaultWindow is the rule's window from the connection to the child.
const defaultWindow = time.Second

func newFlagSet(cmd command, cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("svclaunch "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)

	fs.Func("format", "output `FORMAT`: table, json, ndjson or csv (default: table when standard output is a terminal, ndjson otherwise)", func(s string) error {
		f, err := output.ParseFormat(s)
		if err != nil {
			return err
		}
		cfg.format, cfg.formatSet = f, true
		return nil
	})
	fs.Func("input-format", "read every input as `FORMAT`: nxlog, python-evtx, ecs, osquery-results or evtx (default: detected from each file's content)", func(s string) error {
		f, err := parseInputFormat(s)
		cfg.inputFormat = f
		return err
	})
	fs.Func("utc-offset", "UTC `OFFSET` of zone-less local event times, as ±HH:MM (-04:00 for EDT) or Z. "+
		"Each host's offset is learned from its events that carry both a local and a UTC time (Sysmon's); "+
		"OFFSET applies only to hosts whose offset cannot be learned, and HOST=OFFSET forces one host's offset "+
		"over the learned one (HOST matches case-insensitively, or by its first DNS label). "+
		"Repeat the flag for several hosts. The summary warns when a given offset contradicts a learned one", func(s string) error {
		return cfg.addUTCOffset(s)
	})
	cfg.window = defaultWindow
	fs.Func("window", "longest `DURATION` from the inbound connection to the child's start, as a Go duration such as 1s or 1500ms (default 1s)", func(s string) error {
		d, err := parseDuration(s, "window")
		if err == nil && d == 0 {
			err = errors.New("the window must be longer than 0s")
		}
		cfg.window = d
		return err
	})
	fs.Func("clock-tolerance", "`DURATION` by which a child may start before its connection's timestamp, for sources that stamp connections late, as a Go duration such as 200ms (default 0s)", func(s string) error {
		d, err := parseDuration(s, "clock tolerance")
		cfg.clockTolerance = d
		return err
	})
	fs.BoolVar(&cfg.includeLoopback, "include-loopback", false, "also count connections from the host itself (127.0.0.0/8, ::1 and the host's own addresses)")
	fs.Func("parent-name", "image base `NAME` of the service control manager, compared case-insensitively; repeat the flag for several names (default services.exe)", func(s string) error {
		name := strings.TrimSpace(s)
		if name == "" || strings.ContainsAny(name, `\/`) {
			return fmt.Errorf("invalid parent name %q: give an image base name such as services.exe", s)
		}
		cfg.parentNames = append(cfg.parentNames, name)
		return nil
	})
	fs.BoolVar(&cfg.quiet, "quiet", false, "print no progress and no summary on standard error; errors are still printed")

	if cmd.name == "hunt" {
		fs.Func("since", "report children started at or after `TIME`, as RFC 3339 (2020-09-20T16:16:00Z) or Unix seconds; compared in whole seconds", func(s string) error {
			t, err := parseTimeBound(s)
			cfg.since = &t
			return err
		})
		fs.Func("until", "report children started at or before `TIME`, as RFC 3339 or Unix seconds; compared in whole seconds", func(s string) error {
			t, err := parseTimeBound(s)
			cfg.until = &t
			return err
		})
	}
	if cmd.name == "query" {
		fs.Func("load", "load telemetry from `FILE` (\"-\" for standard input); repeat the flag for several files", func(s string) error {
			if s == "" {
				return errors.New("empty file name")
			}
			cfg.files = append(cfg.files, s)
			return nil
		})
		fs.Func("sql-file", "read the SQL statement from `FILE` (\"-\" for standard input) instead of the last argument", func(s string) error {
			if s == "" {
				return errors.New("empty file name")
			}
			if cfg.sqlFile != "" {
				return fmt.Errorf("--sql-file is already given (%s): give one statement", cfg.sqlFile)
			}
			cfg.sqlFile = s
			return nil
		})
	}
	return fs
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, as GNU tools allow, and returns the positional
// arguments in order. Everything after "--" is positional, and so is every
// argument that cannot be a flag (see literalArgument), such as SQL that
// starts with a "-- name:" comment.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for len(args) > 0 {
		end := flagRunEnd(fs, args)
		if err := fs.Parse(args[:end]); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := end - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			return append(positional, args[end:]...), nil
		}

		if len(rest) > 0 {
			// A positional argument stopped fs.Parse before end.
			positional = append(positional, rest[0])
			args = args[consumed+1:]
			continue
		}
		if end < len(args) {
			positional = append(positional, args[end])
			end++
		}
		args = args[end:]
	}
	return positional, nil
}

// flagRunEnd returns the index of the first argument in args that is
// literal (see literalArgument) and not the value of the flag before it, or
// len(args) when there is none or "--" comes first.
func flagRunEnd(fs *flag.FlagSet, args []string) int {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return len(args)
		}
		if literalArgument(fs, arg) {
			return i
		}
		if name, ok := flagName(arg); ok && !strings.Contains(arg, "=") && takesValue(fs, name) {
			i++ // the next argument is this flag's value, whatever it contains
		}
	}
	return len(args)
}

// literalArgument reports whether arg is positional although it may start
// with "-": it contains whitespace and is not --NAME=VALUE for a defined
// flag NAME. No flag name contains whitespace, so such an argument is SQL or
// a file name, and parsing it as a flag would fail.
func literalArgument(fs *flag.FlagSet, arg string) bool {
	if !strings.ContainsFunc(arg, unicode.IsSpace) {
		return false
	}
	name, ok := flagName(arg)
	if !ok {
		return true
	}
	name, _, _ = strings.Cut(name, "=")
	return fs.Lookup(name) == nil
}

// flagName returns arg without its one or two leading dashes when arg has
// the form of a flag.
func flagName(arg string) (string, bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", false
	}
	name := strings.TrimPrefix(arg[1:], "-")
	return name, name != ""
}

// takesValue reports whether the flag name is defined and reads a value
// from the next argument, which every flag but a boolean one does.
func takesValue(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	boolFlag, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return !isBool || !boolFlag.IsBoolFlag()
}

// writeUsage writes the help of cmd: synopsis, description, flags, exit codes.
func writeUsage(w io.Writer, cmd command) {
	var cfg config
	fs := newFlagSet(cmd, &cfg)

	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", cmd.synopsis, cmd.about)
	fs.VisitAll(func(f *flag.Flag) {
		valueName, usage := flag.UnquoteUsage(f)
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
			valueName = ""
		}
		fmt.Fprintf(w, "  --%s", f.Name)
		if valueName != "" {
			fmt.Fprintf(w, " %s", valueName)
		}
		fmt.Fprintf(w, "\n%s\n", wrapText(usage, "      ", usageWidth))
	})
	fmt.Fprintf(w, `
Standard error shows a progress bar for loads that take over a second (only on a
terminal) and a one-line summary: files read, rows loaded per table, events skipped
and why, each host's UTC offset and how it was found, and the number of rows printed.

Exit status: %d when the command ran (with or without detections), %d when an input or
the output failed (unreadable or truncated file, unknown content, failed query), %d for
a usage error (unknown flag, invalid value, missing argument).
`, ExitOK, ExitRuntime, ExitUsage)
}

// usageWidth is the line width of help text.
const usageWidth = 88

// wrapText breaks text into lines of at most width characters, each
// starting with indent. A word longer than a line gets a line of its own.
func wrapText(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if line != indent && len(line)+1+len(word) > width {
			b.WriteString(line)
			b.WriteString("\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

func parseInputFormat(s string) (telemetry.Format, error) {
	f := telemetry.Format(strings.ToLower(strings.TrimSpace(s)))
	for _, known := range telemetry.Formats() {
		if f == known {
			return f, nil
		}
	}
	names := make([]string, 0, len(telemetry.Formats()))
	for _, known := range telemetry.Formats() {
		names = append(names, string(known))
	}
	return "", fmt.Errorf("unknown input format %q: use one of %s, or leave the flag out to detect it", s, strings.Join(names, ", "))
}

var utcOffsetPattern = regexp.MustCompile(`^([+-])(\d{1,2})(?::?(\d{2}))?$`)

// maxUTCOffset is the largest offset in use (Kiribati's UTC+14:00).
const maxUTCOffset = 14 * time.Hour

// parseUTCOffset reads ±HH:MM, ±HHMM, ±HH or Z as local time minus UTC.
func parseUTCOffset(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "Z") || strings.EqualFold(s, "UTC") {
		return 0, nil
	}

	m := utcOffsetPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid UTC offset %q: use ±HH:MM such as -04:00 or +05:30, or Z", s)
	}
	hours, _ := strconv.Atoi(m[2])
	minutes := 0
	if m[3] != "" {
		minutes, _ = strconv.Atoi(m[3])
	}
	if minutes >= 60 {
		return 0, fmt.Errorf("invalid UTC offset %q: the minutes must be below 60", s)
	}

	d := time.Duration(hours)*time.Hour + time.Duration(minutes)*time.Minute
	if d > maxUTCOffset {
		return 0, fmt.Errorf("invalid UTC offset %q: offsets range from -14:00 to +14:00", s)
	}
	if m[1] == "-" {
		d = -d
	}
	return d, nil
}

// addUTCOffset records one --utc-offset value: OFFSET or HOST=OFFSET.
func (cfg *config) addUTCOffset(s string) error {
	host, offsetText, perHost := strings.Cut(s, "=")
	if !perHost {
		if cfg.defaultUTCOffset != nil {
			return fmt.Errorf("invalid UTC offset %q: an offset without a host is already given (%s); give HOST=OFFSET for single hosts", s, formatOffset(*cfg.defaultUTCOffset))
		}
		d, err := parseUTCOffset(s)
		cfg.defaultUTCOffset = &d
		return err
	}

	host = strings.TrimSpace(host)
	if host == "" {
		return fmt.Errorf("invalid UTC offset %q: the host name before '=' is empty: give HOST=OFFSET such as WORKSTATION6=-04:00", s)
	}
	d, err := parseUTCOffset(offsetText)
	if err != nil {
		return err
	}
	if cfg.hostUTCOffsets == nil {
		cfg.hostUTCOffsets = map[string]time.Duration{}
	}
	for name, existing := range cfg.hostUTCOffsets {
		if strings.EqualFold(name, host) && existing != d {
			return fmt.Errorf("invalid UTC offset %q: host %s already has offset %s", s, name, formatOffset(existing))
		}
	}
	cfg.hostUTCOffsets[host] = d
	return nil
}

// parseDuration reads a non-negative Go duration; setting names the value in
// messages.
func parseDuration(s, setting string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: use a Go duration such as 1s, 500ms or 1m30s", setting, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid %s %q: it must not be negative", setting, s)
	}
	return d, nil
}

// parseTimeBound reads RFC 3339 or Unix seconds and returns Unix seconds,
// rounded down, because the `time` column it is compared with holds whole
// seconds.
func parseTimeBound(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) < 1<<62 {
		return int64(math.Floor(f)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("invalid time %q: use RFC 3339 such as 2020-09-20T16:16:00Z or -04:00 for a zone, or Unix seconds such as 1600618560", s)
	}
	return t.Unix(), nil
}
