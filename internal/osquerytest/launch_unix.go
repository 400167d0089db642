//go:build !windows

package osquerytest

import (
	"context"
	"os/exec"
)

// execScript sets OSQUERY_EXTENSION to the shell's process ID and then
// replaces the shell with the extension, which keeps that process ID. This is
// how the value reaches the extension as osqueryd's fork-then-execve gives
// it, because Go cannot set a variable between fork and exec.
const execScript = `OSQUERY_EXTENSION=$$; export OSQUERY_EXTENSION; exec "$0" "$@"`

// extensionCommand returns the command that runs binaryPath with args, with
// argv[0] set to binaryPath, as osqueryd's execve call does.
func extensionCommand(ctx context.Context, binaryPath string, args []string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", execScript, binaryPath}, args...)...)
}
