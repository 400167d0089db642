package pack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Output formats of the pack command.
const (
	// FormatOsquery is an osquery JSON pack for the "packs" key of
	// osqueryd's configuration. It holds the scheduled queries only.
	FormatOsquery = "osquery"
	// FormatFleet is a stream of "kind: query" documents for fleetctl
	// apply -f.
	FormatFleet = "fleet"
	// FormatFleetGitOps is a list of queries for a GitOps team file's
	// "queries:" key.
	FormatFleetGitOps = "fleet-gitops"
)

// Formats lists the values --format accepts.
var Formats = []string{FormatOsquery, FormatFleet, FormatFleetGitOps}

// Exit codes of RunCommand.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Generate returns the whole pack in one format.
func Generate(format string) ([]byte, error) {
	queries, err := Queries()
	if err != nil {
		return nil, err
	}

	switch format {
	case FormatOsquery:
		return MarshalOsquery(queries)
	case FormatFleet:
		return MarshalFleetApply(queries)
	case FormatFleetGitOps:
		return MarshalFleetGitOps(queries)
	default:
		return nil, fmt.Errorf("unknown format %q; use one of %s", format, strings.Join(Formats, ", "))
	}
}

// RunCommand implements "svclaunch pack --format osquery|fleet|fleet-gitops
// [--output FILE]". args are the arguments after the subcommand name. It
// writes the pack to stdout, or to FILE through a temporary file and a
// rename so that a reader never reads half a pack. The exit code is 0 on
// success, 1 when writing failed and 2 for invalid arguments.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("pack", flag.ContinueOnError)
	flags.SetOutput(stderr)
	format := flags.String("format", FormatOsquery, "output format: "+strings.Join(Formats, ", "))
	output := flags.String("output", "", "file to write; the default is standard output")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: svclaunch pack [--format %s] [--output FILE]\n\n", strings.Join(Formats, "|"))
		fmt.Fprintln(stderr, "Writes svclaunch's scheduled queries as an osquery JSON pack (osquery),")
		fmt.Fprintln(stderr, "fleetctl apply documents (fleet) or a fleetctl gitops query list (fleet-gitops).")
		fmt.Fprintln(stderr)
		flags.PrintDefaults()
	}

	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "svclaunch pack: unexpected argument %q; the command takes only --format and --output\n", flags.Arg(0))
		return exitUsage
	}
	if !slices.Contains(Formats, *format) {
		fmt.Fprintf(stderr, "svclaunch pack: unknown format %q; use one of %s\n", *format, strings.Join(Formats, ", "))
		return exitUsage
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(stderr, "svclaunch pack: %v\n", err)
		return exitError
	}

	data, err := Generate(*format)
	if err != nil {
		fmt.Fprintf(stderr, "svclaunch pack: %v\n", err)
		return exitError
	}

	if *output == "" {
		if _, err := stdout.Write(data); err != nil {
			fmt.Fprintf(stderr, "svclaunch pack: writing to standard output: %v\n", err)
			return exitError
		}
		return exitOK
	}
	if err := writeFileAtomic(*output, data); err != nil {
		fmt.Fprintf(stderr, "svclaunch pack: %v\n", err)
		return exitError
	}
	return exitOK
}

// writeFileAtomic replaces path with data in one rename, so osqueryd or
// fleetctl reading the file at the same moment gets the old or the new pack,
// never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("creating a temporary file beside %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename

	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("setting permissions of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}
