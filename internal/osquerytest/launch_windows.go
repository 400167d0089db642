//go:build windows

package osquerytest

import (
	"context"
	"os"
	"os/exec"
)

// extensionCommand returns the command that runs binaryPath with args. On
// Windows osqueryd sets OSQUERY_EXTENSION to "1" for its children.
func extensionCommand(ctx context.Context, binaryPath string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binaryPath, args...)
	cmd.Env = append(os.Environ(), "OSQUERY_EXTENSION=1")
	return cmd
}
