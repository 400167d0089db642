package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

const usageHeader = `svclaunch is an osquery extension with two tables. remote_service_launches
(MITRE CAR-2014-03-005) has one row for every child process that the Windows
service control manager (services.exe) started within a second after accepting
an inbound network connection. remote_service_launch_sources has one row per
event source that the detection reads, with its status (ok, missing, disabled,
empty or error) and a hint on what to change.

Usage:
  svclaunch.ext --socket PATH --timeout SECONDS --interval SECONDS [--verbose] [flags]
      Run as an osquery extension. osqueryd starts the extension this way
      when its path is listed in the --extensions_autoload file; on Linux
      and macOS the file name must end in .ext. The extension exits with
      status 1 when osqueryd goes away, so that osqueryd's watcher starts
      it again, and with status 0 on SIGINT or SIGTERM.
  svclaunch hunt [flags] [FILE...]
      Run the detection over recorded telemetry (NXLog, python-evtx, ECS or
      osquery results-log JSON lines, or .evtx) and print one row per
      detection. Without FILE it reads a bundled Empire PsExec sample.
  svclaunch query [flags] [FILE...] SQL
      Load recorded telemetry into osquery's tables and run one SQL
      statement over them and the extension's tables, as osqueryi would.
  svclaunch pack [--format osquery|fleet|fleet-gitops] [--output FILE]
      Write the scheduled query pack.
  svclaunch spec
      Print the table specs as JSON.
  svclaunch version
      Print the version.
  svclaunch help
      Print this help.

Run "svclaunch hunt -h", "svclaunch query -h" or "svclaunch pack -h" for the
flags of those commands.

Extension flags:
`

const usageEnvironment = `
Environment:
  osqueryd passes an autoloaded extension only --socket, --timeout, --interval
  and --verbose, and its extensions.load file lists paths without arguments.
  So every extension flag except --socket, --timeout and --interval can also
  be set with an environment variable in osqueryd's environment, which
  osqueryd's extensions inherit (for example Environment= in osqueryd's
  systemd unit). A command-line flag overrides the variable.
`

// printUsage writes the help text: the commands, the extension flags and
// their environment variables.
func printUsage(w io.Writer) {
	f := defaultExtensionFlags()
	fs, _ := newExtensionFlagSet(&f)

	var b strings.Builder
	b.WriteString(usageHeader)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString(usageEnvironment)
	for _, name := range envFlags {
		fmt.Fprintf(&b, "  %-30s sets --%s%s\n", envName(name), name, envNote(fs.Lookup(name)))
	}
	fmt.Fprint(w, b.String())
}

// envNote describes the value format of a flag's environment variable
// where it differs from the flag's.
func envNote(f *flag.Flag) string {
	switch f.Name {
	case "parent-name":
		return " (comma-separated names)"
	case "verbose", "include-loopback":
		return " (true or false)"
	default:
		return ""
	}
}
