package osquerytest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/osquery/osquery-go/gen/osquery"
)

// LaunchExtension starts an extension binary the way osqueryd's watcher starts
// an autoloaded extension (PlatformProcess::launchExtension in
// osquery/process/posix/process.cpp and windows/process.cpp):
//
//   - the arguments are [--verbose] --socket <manager path> --timeout <s>
//     --interval <s>, with --verbose first and only when verbose is set, and
//     the timeout and interval in whole seconds from the server's Options;
//   - the environment is this process's, plus OSQUERY_EXTENSION set to the
//     extension's own process ID on Linux and macOS (osqueryd sets it in the
//     forked child before execve), or to "1" on Windows.
//
// The extension's stdout and stderr go to Options.ExtensionOutput. The process
// is killed when ctx ends or when the server is closed. The caller waits for
// it with the returned command's Wait.
func LaunchExtension(ctx context.Context, binaryPath string, s *Server, verbose bool) (*exec.Cmd, error) {
	if s.isStopped() {
		return nil, errors.New("launching extension: the osquery stand-in is stopped")
	}

	// osqueryd runs the path it resolved from the autoload file, never a
	// name looked up in PATH.
	absolutePath, err := filepath.Abs(binaryPath)
	if err != nil {
		return nil, fmt.Errorf("launching extension %s: %w", binaryPath, err)
	}

	var args []string
	if verbose {
		args = append(args, "--verbose")
	}
	args = append(args,
		"--socket", s.path,
		"--timeout", wholeSeconds(s.opts.Timeout),
		"--interval", wholeSeconds(s.opts.Interval),
	)

	cmd := extensionCommand(ctx, absolutePath, args)
	cmd.Stdout = s.opts.ExtensionOutput
	cmd.Stderr = s.opts.ExtensionOutput
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launching extension %s: %w", absolutePath, err)
	}

	s.mu.Lock()
	s.launched = append(s.launched, cmd)
	s.mu.Unlock()

	s.log.Info("extension process started", "pid", cmd.Process.Pid, "path", absolutePath, "verbose", verbose)
	return cmd, nil
}

// WaitForExtension waits until an extension with this name is registered and
// responds to a ping on its own socket, and returns its route UUID. This is the
// check osqueryd applies to the names in --extensions_require. After it, the
// extension's tables can be queried. It fails when ctx ends first or the
// server is stopped.
func (s *Server) WaitForExtension(ctx context.Context, name string) (osquery.ExtensionRouteUUID, error) {
	ticker := time.NewTicker(socketPollInterval)
	defer ticker.Stop()

	var pingErr error
	for {
		s.mu.Lock()
		uuid, registered := s.registry.uuidByName(name)
		stopped := s.stopped
		changed := s.changed
		s.mu.Unlock()

		if stopped {
			return 0, fmt.Errorf("waiting for extension %q: the osquery stand-in is stopped", name)
		}

		// The extension registers before it opens its socket, so a
		// registered extension may not respond yet.
		poll := ticker.C
		if registered {
			pingErr = s.pingExtension(ctx, uuid)
			if pingErr == nil {
				return uuid, nil
			}
		} else {
			poll = nil
		}

		select {
		case <-ctx.Done():
			if pingErr != nil {
				return 0, fmt.Errorf("waiting for extension %q (last ping: %v): %w", name, pingErr, ctx.Err())
			}
			return 0, fmt.Errorf("waiting for extension %q to register: %w", name, ctx.Err())
		case <-changed:
		case <-poll:
		}
	}
}

// wholeSeconds formats a duration as osqueryd's second-based flags: whole
// seconds, rounded up, at least 1.
func wholeSeconds(d time.Duration) string {
	seconds := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(seconds, 1), 10)
}
