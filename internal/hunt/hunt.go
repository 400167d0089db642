// Package hunt implements the `svclaunch hunt` and `svclaunch query`
// subcommands, which run svclaunch's detection over recorded telemetry
// instead of a live osqueryd.
//
// Both load the recordings into a fresh embedded engine that holds osquery's
// table schemas, set the engine's clock to the newest loaded event, and
// attach the extension's tables with the engine as the osquery they query.
// The detection therefore runs through the same SQL, the same constraint
// handling and the same correlation code as inside osqueryd.
package hunt

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/output"
	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// RunHunt runs `svclaunch hunt` with args (the arguments after "hunt") and
// returns the process exit code: ExitOK, ExitRuntime or ExitUsage.
func RunHunt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, huntCommand, args, stdin, stdout, stderr)
}

// RunQuery runs `svclaunch query` with args (the arguments after "query")
// and returns the process exit code: ExitOK, ExitRuntime or ExitUsage.
func RunQuery(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, queryCommand, args, stdin, stdout, stderr)
}

// detectionTable is the table that hunt reads.
const detectionTable = "remote_service_launches"

func run(ctx context.Context, cmd command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(cmd, args, output.IsTerminal(stdout))
	if errors.Is(err, flag.ErrHelp) {
		writeUsage(stdout, cmd)
		return ExitOK
	}
	if err == nil && cfg.sqlFile != "" {
		cfg.sql, err = readSQLFile(cfg.sqlFile, stdin)
		var usage usageError
		if err != nil && !errors.As(err, &usage) {
			printError(stderr, cmd, err)
			return ExitRuntime
		}
	}
	if err != nil {
		printError(stderr, cmd, err)
		fmt.Fprintf(stderr, "Usage: %s\nRun 'svclaunch %s --help' for the flags.\n", cmd.synopsis, cmd.name)
		return ExitUsage
	}

	result, err := execute(ctx, cmd, cfg, stdin, stderr)
	if err != nil {
		printError(stderr, cmd, err)
		return ExitRuntime
	}

	if err := output.Write(stdout, cfg.format, result.columns, result.rows, output.Options{Width: output.TerminalWidth(stdout)}); err != nil {
		printError(stderr, cmd, err)
		return ExitRuntime
	}

	if !cfg.quiet {
		noun := "row"
		if cmd.name == huntCommand.name {
			noun = "detection"
		}
		fmt.Fprint(stderr, result.summary.line(cmd.name, len(result.rows), noun))
	}
	return ExitOK
}

// printError writes err on one line. The message can quote file names and
// telemetry, so it is escaped like table output.
func printError(stderr io.Writer, cmd command, err error) {
	fmt.Fprintf(stderr, "svclaunch %s: %s\n", cmd.name, output.EscapeText(err.Error()))
}

// result is the output of execute: the rows to print, their column order
// and the summary.
type result struct {
	columns []string
	rows    []map[string]string
	summary *summary
}

// execute loads the inputs, attaches the extension's tables and runs the
// command's SQL.
func execute(ctx context.Context, cmd command, cfg config, stdin io.Reader, stderr io.Writer) (result, error) {
	inputs := inputsFor(cfg.files, stdin)
	if len(inputs) == 0 {
		// Printed even with --quiet, so that the sample's detection is not
		// mistaken for one in the user's own telemetry.
		fmt.Fprintf(stderr, "svclaunch %s: no file given: reading the %s (42 lines of the OTRF Security-Datasets Empire PsExec recording, MIT licence, see NOTICE); give files to read your own telemetry\n", cmd.name, SampleName)
		inputs = []input{sampleInput()}
	}

	e, err := engine.Open(ctx, engine.Options{IndexTime: true})
	if err != nil {
		return result{}, fmt.Errorf("opening the embedded database: %w", err)
	}
	defer e.Close()

	progress := noProgress
	if !cfg.quiet && output.IsTerminal(stderr) {
		progress = terminalProgress(stderr, progressDelay)
	}
	l := &loader{
		engine: e,
		opts: telemetry.Options{
			Format:           cfg.inputFormat,
			DefaultUTCOffset: cfg.defaultUTCOffset,
			HostUTCOffsets:   cfg.hostUTCOffsets,
		},
		progress: progress,
		summary:  newSummary(),
	}
	l.summary.forcedHosts = sortedKeys(cfg.hostUTCOffsets)
	for _, in := range inputs {
		if err := l.load(ctx, in); err != nil {
			return result{}, err
		}
	}
	if err := checkEmptyInputs(cmd, l.summary, len(inputs), stderr); err != nil {
		return result{}, err
	}

	// The replay's "now" is the newest loaded event, as if osqueryd were
	// queried right after the recording ended. With no timed row the
	// engine keeps the wall clock.
	if l.summary.clock > 0 {
		e.SetClock(l.summary.clock)
	}

	visible, err := attachTables(e, cmd, cfg, l.summary, stderr)
	if err != nil {
		return result{}, err
	}

	query := cfg.sql
	if cmd.name == huntCommand.name {
		query = huntSQL(cfg.since, cfg.until)
	}
	columns, rows, err := e.QueryColumns(ctx, query)
	if err != nil {
		return result{}, err
	}

	if cmd.name == huntCommand.name {
		columns = visible[detectionTable]
	}
	return result{columns: columns, rows: rows, summary: l.summary}, nil
}

// huntSQL returns hunt's statement. The bounds are integers formatted by
// strconv, so no user text reaches the SQL.
func huntSQL(since, until *int64) string {
	query := "SELECT * FROM " + detectionTable
	switch {
	case since != nil && until != nil:
		query += " WHERE time >= " + strconv.FormatInt(*since, 10) + " AND time <= " + strconv.FormatInt(*until, 10)
	case since != nil:
		query += " WHERE time >= " + strconv.FormatInt(*since, 10)
	case until != nil:
		query += " WHERE time <= " + strconv.FormatInt(*until, 10)
	}
	return query
}

// checkEmptyInputs warns about each input that yielded no rows, even with
// --quiet, because a hunt over an empty export reports no detection without
// having looked. It returns an error when no input yielded a row.
func checkEmptyInputs(cmd command, s *summary, inputs int, stderr io.Writer) error {
	empty := s.emptyInputs
	if len(empty) < inputs {
		for _, e := range empty {
			fmt.Fprintf(stderr, "svclaunch %s: warning: %s\n", cmd.name, output.EscapeText(e.message()))
		}
		return nil
	}

	// The run stops before its summary, so the reasons for the skipped
	// events are given here.
	if skipped := s.skippedPart(); len(s.skipped) > 0 {
		fmt.Fprintf(stderr, "svclaunch %s: %s\n", cmd.name, output.EscapeText(skipped))
	}
	if len(empty) == 1 {
		return fmt.Errorf("%s: check that the file is the export you meant", empty[0].message())
	}
	messages := make([]string, 0, len(empty))
	for _, e := range empty {
		messages = append(messages, e.message())
	}
	return fmt.Errorf("no input yielded an event: %s", strings.Join(messages, "; "))
}
