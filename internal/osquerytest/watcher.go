package osquerytest

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/osquery/osquery-go/gen/osquery"
)

// socketPollInterval is how often the stand-in looks for an extension's socket
// while it waits for it (kExtensionInitializeLatency in osqueryd).
const socketPollInterval = 20 * time.Millisecond

// watch runs the health checks of osqueryd's ExtensionManagerWatcher until ctx
// ends: one pass at once, then one pass per interval.
func (s *Server) watch(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}

		s.checkExtensions(ctx)
		timer.Reset(s.opts.Interval)
	}
}

// checkExtensions runs one pass of ExtensionManagerWatcher::watch
// (osquery/extensions/extensions.cpp). An extension that has never been
// checked gets up to Timeout for its socket to appear. After that, a single
// failed check removes it: osqueryd sets the failure count to 1 before every
// check and removes an extension whose count then exceeds 1, so its "two
// failures" are the reset value plus one failure.
func (s *Server) checkExtensions(ctx context.Context) {
	s.mu.Lock()
	uuids := slices.Sorted(maps.Keys(s.registry.extensions))
	firstCheck := map[osquery.ExtensionRouteUUID]bool{}
	for _, uuid := range uuids {
		firstCheck[uuid] = s.registry.failures[uuid] == 0
	}
	s.mu.Unlock()

	var removals []osquery.ExtensionRouteUUID
	for _, uuid := range uuids {
		path := s.ExtensionPath(uuid)
		exists := socketExists(path)

		// osquery-go registers first and opens its socket afterwards, so a
		// new extension gets time to start listening.
		if !exists && firstCheck[uuid] {
			s.log.Debug("extension initial check failed", "uuid", uuid, "path", path)
			exists = s.waitForExtension(ctx, uuid)
		}

		healthy := exists
		if exists {
			if err := s.pingExtension(ctx, uuid); err != nil {
				s.log.Info("extension ping failed", "uuid", uuid, "error", err)
				healthy = false
			}
		}
		if ctx.Err() != nil {
			// Stop interrupted the pass, so its results mean nothing.
			return
		}

		s.mu.Lock()
		if _, registered := s.registry.extensions[uuid]; registered {
			s.registry.failures[uuid] = 1
			if !healthy {
				s.registry.failures[uuid]++
				removals = append(removals, uuid)
			}
		}
		s.mu.Unlock()
	}

	for _, uuid := range removals {
		s.remove(ctx, uuid, "gone away")
	}
}

// waitForExtension waits up to Timeout for an extension's socket to appear
// and respond to a ping, as osqueryd's extensionPathActive does with its timeout,
// and reports whether it did.
func (s *Server) waitForExtension(ctx context.Context, uuid osquery.ExtensionRouteUUID) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()

	ticker := time.NewTicker(socketPollInterval)
	defer ticker.Stop()
	for {
		if socketExists(s.ExtensionPath(uuid)) && s.pingExtension(ctx, uuid) == nil {
			return true
		}

		select {
		case <-ctx.Done():
			return false
		case <-ticker.C:
		}
	}
}
