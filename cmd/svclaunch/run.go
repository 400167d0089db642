package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/hunt"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/sourcehealth"
	"github.com/svclaunch/svclaunch/pack"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunchsources"
)

// Exit codes.
const (
	exitOK = 0
	// exitFailure means the command failed at run time, including an
	// extension that lost osqueryd, so that osqueryd's watcher restarts it.
	exitFailure = 1
	// exitUsage means an invalid command line or environment variable.
	exitUsage = 2
)

// run runs one command line (without the program name) and returns the
// exit code. An argument list that starts with a flag, or is empty, runs the
// extension, because osqueryd starts extensions with flags only.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runExtension(ctx, args, stdout, stderr)
	}

	command, rest := args[0], args[1:]
	switch command {
	case "spec":
		return runSpec(rest, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	case "hunt":
		return hunt.RunHunt(ctx, rest, stdin, stdout, stderr)
	case "query":
		return hunt.RunQuery(ctx, rest, stdin, stdout, stderr)
	case "pack":
		return pack.RunCommand(ctx, rest, stdout, stderr)
	case "help":
		printUsage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "svclaunch: unknown command %q; run \"svclaunch help\" for the list of commands\n", command)
		return exitUsage
	}
}

// runExtension parses the extension flags and runs the extension until
// osqueryd goes away or ctx is cancelled.
func runExtension(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags, err := parseExtensionFlags(args, os.LookupEnv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "svclaunch: %v\n", err)
		return exitUsage
	}

	level := slog.LevelInfo
	if flags.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	logger.DebugContext(ctx, "detection settings",
		"window", flags.window,
		"parent_names", flags.parentNames,
		"include_loopback", flags.includeLoopback,
		"clock_tolerance", flags.clockTolerance,
		"lookback", flags.lookback,
		"sources", flags.sources,
		"max_rows_per_source", flags.maxRowsPerSource,
		"generate_timeout", flags.generateTimeout)

	err = extension.Run(ctx, extension.Config{
		Socket:          flags.socket,
		Timeout:         flags.timeout,
		Interval:        flags.interval,
		Verbose:         flags.verbose,
		Logger:          logger,
		Version:         buildVersion(),
		GenerateTimeout: flags.generateTimeout,
		Tables: func(q osq.Querier, logger *slog.Logger) ([]*table.Plugin, error) {
			return tablePlugins(flags.tableConfig(q, logger)), nil
		},
	})
	if err != nil {
		// extension.Run has logged the error with its details.
		return exitFailure
	}
	return exitOK
}

// tablePlugins returns every table the extension registers. With a
// querier, the detection reads only the sources osquery reports enabled.
// remote_service_launch_sources reports on the detection's sources and
// shares its discovery cache and read statistics.
func tablePlugins(cfg remoteservicelaunches.Config) []*table.Plugin {
	if cfg.Discovery == nil && cfg.Querier != nil {
		cfg.Discovery = sourcehealth.NewDiscovery(cfg.Querier, sourcehealth.DiscoveryOptions{Logger: cfg.Logger})
	}
	launches := remoteservicelaunches.New(cfg)
	launchSources := remoteservicelaunchsources.New(remoteservicelaunchsources.ConfigFor(launches.Config()))
	return []*table.Plugin{launches.Plugin(), launchSources.Plugin()}
}

// runSpec prints the spec of every table as a JSON array, in the format of
// osquery's table specs as osquery-go generates it.
func runSpec(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "svclaunch spec: unexpected argument %q; the command takes no arguments\n", args[0])
		return exitUsage
	}

	// The spec does not depend on the querier or the detection options.
	plugins := tablePlugins(remoteservicelaunches.Config{})
	specs := make([]table.OsqueryTableSpec, 0, len(plugins))
	for _, plugin := range plugins {
		specs = append(specs, plugin.Spec())
	}

	// SQL examples contain < and >, which the default encoder escapes.
	var data bytes.Buffer
	encoder := json.NewEncoder(&data)
	encoder.SetEscapeHTML(false)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(specs); err != nil {
		fmt.Fprintf(stderr, "svclaunch spec: encoding the table specs: %v\n", err)
		return exitFailure
	}
	if _, err := stdout.Write(data.Bytes()); err != nil {
		fmt.Fprintf(stderr, "svclaunch spec: writing to standard output: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// runVersion prints the program name and version.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "svclaunch version: unexpected argument %q; the command takes no arguments\n", args[0])
		return exitUsage
	}
	if _, err := fmt.Fprintf(stdout, "svclaunch %s\n", buildVersion()); err != nil {
		fmt.Fprintf(stderr, "svclaunch version: writing to standard output: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// buildVersion returns the version set with -ldflags, else the main
// module's version from the build information (set by "go install
// module@version"), else "devel" with the VCS revision when the build
// recorded one.
func buildVersion() string {
	if version != "" {
		return version
	}

	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}

	revision, modified := "", false
	for _, setting := range info.Settings {
		switch setting.Key {
		case "vcs.revision":
			revision = setting.Value
		case "vcs.modified":
			modified = setting.Value == "true"
		}
	}
	if revision == "" {
		return "devel"
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified {
		revision += "-dirty"
	}
	return "devel-" + revision
}
