package extension

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/osquery/osquery-go"
)

// pollInterval is the time between attempts to reach osqueryd's socket
// while waiting for it at start-up.
const pollInterval = 100 * time.Millisecond

// waitForOsquery polls until the socket exists and osqueryd responds to a ping,
// for at most timeout, and returns the connected client. The client's
// socket timeout is timeout too. It returns a nil client and nil error when
// ctx is cancelled first.
//
// osqueryd starts autoloaded extensions at about the time it opens the
// socket, so the socket may appear a moment after the extension starts.
// The wait may run past timeout by up to one attempt (at most timeout
// again), when the socket accepts a connection but osqueryd does not
// respond to the ping.
func waitForOsquery(ctx context.Context, socket string, timeout time.Duration, logger *slog.Logger) (*osquery.ExtensionManagerClient, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()

	var lastErr error
	for attempt := 1; ; attempt++ {
		client, err := pingOsquery(ctx, socket, timeout)
		if err == nil {
			logger.DebugContext(ctx, "osquery responded to a ping", "socket", socket, "attempts", attempt)
			return client, nil
		}
		lastErr = err

		select {
		case <-ctx.Done():
			return nil, nil
		case <-deadline.C:
			return nil, fmt.Errorf("osquery socket %s did not respond to a ping within %s: %w; check that osqueryd runs with --extensions_socket=%s, or pass a larger --timeout",
				socket, timeout, lastErr, socket)
		case <-poll.C:
		}
	}
}

// pingOsquery makes one attempt to connect to the socket and ping osqueryd.
func pingOsquery(ctx context.Context, socket string, timeout time.Duration) (*osquery.ExtensionManagerClient, error) {
	// osquery-go's client waits for a missing socket in 200 ms steps up to
	// its timeout, which would defeat the deadline above, so check first.
	if err := checkSocket(socket); err != nil {
		return nil, err
	}

	client, err := osquery.NewClient(socket, timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}

	pingCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, err := client.PingContext(pingCtx)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pinging: %w", err)
	}
	if status.Code != 0 {
		client.Close()
		return nil, fmt.Errorf("ping returned status %d: %s", status.Code, status.Message)
	}
	return client, nil
}
