// Command svclaunch is the remote_service_launches osquery table (MITRE
// CAR-2014-03-005): child processes that the Windows service control
// manager starts within a second after accepting an inbound network
// connection.
//
// Started by osqueryd with --socket, --timeout and --interval, it runs as an
// osquery extension; install it as svclaunch.ext. The subcommands serve
// people: hunt and query run the detection or any SQL over recorded
// telemetry, pack writes the query pack, spec prints the table specs and
// version the version. Run "svclaunch help" for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
// Empty means the module version from the build information.
var version string

func main() {
	// systemd and launchd stop a service with SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
