// Package extension runs svclaunch as an osquery extension: it waits for
// osqueryd's extension manager socket, registers the tables over Thrift
// (osquery-go), serves osqueryd's calls and returns when osqueryd goes away
// or the context is cancelled.
package extension

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/internal/osq"
)

// Name is the extension name registered with osqueryd. osqueryd rejects a
// second extension of the same name, so two copies cannot run at once.
const Name = "svclaunch"

// Defaults used when a Config field is zero. Timeout and Interval match
// osqueryd's defaults for --extensions_timeout and --extensions_interval.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultInterval = 3 * time.Second

	// DefaultGenerateTimeout stays well below osqueryd's --thrift_timeout
	// (300 s by default, the socket timeout osqueryd uses when it calls an
	// extension), so that osqueryd receives a clear error instead of a
	// broken connection. It exceeds the 3 x 20 s that remote_service_launches
	// allows its sequential queries by default, so that one slow source
	// fails alone instead of the whole call.
	DefaultGenerateTimeout = 90 * time.Second

	// DefaultMaxConcurrentGenerates bounds the table calls in progress,
	// including calls that timed out and are still finishing. The table's
	// own queries share one osquery client, so more would only queue.
	DefaultMaxConcurrentGenerates = 4
)

// TablesFunc builds the table plugins. The querier runs SQL on osqueryd
// through the extension's own client, and the logger is the extension's.
type TablesFunc func(q osq.Querier, logger *slog.Logger) ([]*table.Plugin, error)

// Config holds the settings of one extension run. Socket, Timeout, Interval
// and Verbose come from the flags that osqueryd passes to the extension.
type Config struct {
	// Socket is the path of osqueryd's extension manager socket (a named
	// pipe on Windows).
	Socket string
	// Timeout bounds the wait for the socket to respond to a ping at start-up,
	// and each call on the client that registers and pings.
	Timeout time.Duration
	// Interval is the time between pings of osqueryd. The extension
	// stops when a ping fails.
	Interval time.Duration
	// Verbose lowers the log level to debug when Logger is nil.
	Verbose bool
	// Logger receives the extension's logs. Nil means text on stderr.
	Logger *slog.Logger
	// Version is reported to osqueryd at registration and in the logs.
	Version string
	// GenerateTimeout bounds each table call from osqueryd, and each query
	// that the tables send back to osqueryd.
	GenerateTimeout time.Duration
	// MaxConcurrentGenerates bounds the table calls in progress.
	MaxConcurrentGenerates int
	// Tables builds the table plugins to register.
	Tables TablesFunc
}

// withDefaults returns a copy of cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.GenerateTimeout == 0 {
		cfg.GenerateTimeout = DefaultGenerateTimeout
	}
	if cfg.MaxConcurrentGenerates == 0 {
		cfg.MaxConcurrentGenerates = DefaultMaxConcurrentGenerates
	}
	if cfg.Logger == nil {
		level := slog.LevelInfo
		if cfg.Verbose {
			level = slog.LevelDebug
		}
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return cfg
}

// validate checks the values that would otherwise fail deep inside
// osquery-go or make the ping loop spin.
func (cfg Config) validate() error {
	if cfg.Socket == "" {
		return errors.New("missing osquery socket path: pass --socket PATH (osqueryd passes it when it starts the extension)")
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("invalid timeout %s: pass a positive --timeout in seconds", cfg.Timeout)
	}
	if cfg.Interval < 0 {
		return fmt.Errorf("invalid interval %s: pass a positive --interval in seconds", cfg.Interval)
	}
	if cfg.GenerateTimeout < time.Second {
		return fmt.Errorf("invalid generate timeout %s: use at least 1s", cfg.GenerateTimeout)
	}
	if cfg.MaxConcurrentGenerates < 0 {
		return fmt.Errorf("invalid maximum of concurrent table calls %d: use a positive number", cfg.MaxConcurrentGenerates)
	}
	if cfg.Tables == nil {
		return errors.New("no tables to register: set Config.Tables")
	}
	return nil
}

// Run registers the tables with osqueryd and serves its calls until osqueryd
// goes away or ctx is cancelled. It returns nil after ctx is cancelled or
// when osqueryd requests a shutdown, and an error when osqueryd cannot be
// reached or stops responding to pings, so that the process can exit non-zero
// and osqueryd's watcher starts it again.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	logger := cfg.Logger

	logger.InfoContext(ctx, "extension starting",
		"version", cfg.Version,
		"socket", cfg.Socket,
		"timeout", cfg.Timeout,
		"interval", cfg.Interval)

	err := serve(ctx, cfg)
	if err != nil {
		logger.ErrorContext(ctx, "extension stopped", "error", err)
		return err
	}
	logger.InfoContext(ctx, "extension stopped")
	return nil
}

// serve does the work of Run between the start and stop log lines.
func serve(ctx context.Context, cfg Config) error {
	logger := cfg.Logger

	managerClient, err := waitForOsquery(ctx, cfg.Socket, cfg.Timeout, logger)
	if err != nil {
		return err
	}
	if managerClient == nil {
		// ctx was cancelled before osqueryd responded, which is a clean stop.
		return nil
	}
	// NOTE: because the server gets this client through WithClient,
	// osquery-go's ping goroutine outlives Run. Its next ping after Close
	// fails, and it then blocks forever sending on a channel that no
	// goroutine reads: one goroutine leaks per Run, which matters only to a process
	// that runs the extension more than once.
	registration := &registrationClient{ExtensionManagerClient: managerClient, logger: logger}
	defer managerClient.Close()

	// The tables get a client of their own, because osquery-go's server
	// pings osqueryd through its client every interval, and a long table
	// query holding that client's lock makes a ping fail and ends Run.
	querier, err := newClientQuerier(cfg.Socket, cfg.GenerateTimeout, min(cfg.Timeout, cfg.GenerateTimeout), logger)
	if err != nil {
		return err
	}
	defer querier.Close()

	plugins, err := buildPlugins(cfg, querier)
	if err != nil {
		return err
	}

	server, err := osquery.NewExtensionManagerServer(Name, cfg.Socket,
		osquery.ServerTimeout(cfg.Timeout),
		osquery.ServerPingInterval(cfg.Interval),
		osquery.ExtensionVersion(cfg.Version),
		osquery.WithClient(registration),
		// Buffered, a table's response leaves in a few writes instead of
		// one write system call per Thrift field, osquery-go's default.
		osquery.WithTransportFactory(thrift.NewTBufferedTransportFactory(queryBufferSize)))
	if err != nil {
		return fmt.Errorf("creating the extension server on %s: %w", cfg.Socket, err)
	}
	for _, plugin := range plugins {
		server.RegisterPlugin(plugin)
	}

	done := make(chan error, 1)
	go func() { done <- server.Run() }()

	select {
	case err := <-done:
		if err != nil && registration.UUID() == 0 {
			return fmt.Errorf("registering with osquery at %s: %w", cfg.Socket, err)
		}
		if err != nil {
			return fmt.Errorf("lost osquery at %s: %w; osqueryd's watcher starts the extension again when osqueryd runs", cfg.Socket, err)
		}
		// osquery-go's Run returns nil only after osqueryd called the
		// extension's shutdown method, which osqueryd does when it exits.
		logger.InfoContext(ctx, "osquery requested shutdown", "uuid", registration.UUID())
		return nil
	case <-ctx.Done():
		logger.InfoContext(ctx, "extension stopping", "reason", context.Cause(ctx).Error(), "uuid", registration.UUID())
		stopServer(server, done, cfg.Timeout, logger)
		return nil
	}
}

// buildPlugins builds the tables, rejects duplicate names and wraps each
// table's generate with the deadline, concurrency cap and panic recovery.
func buildPlugins(cfg Config, querier osq.Querier) ([]osquery.OsqueryPlugin, error) {
	tables, err := cfg.Tables(querier, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("building the tables: %w", err)
	}
	if len(tables) == 0 {
		return nil, errors.New("building the tables: no table to register")
	}

	// osquery-go keeps plugins in a map by name, so a second table of the
	// same name would silently replace the first.
	seen := make(map[string]bool, len(tables))
	slots := make(chan struct{}, cfg.MaxConcurrentGenerates)
	plugins := make([]osquery.OsqueryPlugin, 0, len(tables))
	for _, t := range tables {
		if seen[t.Name()] {
			return nil, fmt.Errorf("building the tables: table name %q is registered twice; give each table a unique name", t.Name())
		}
		seen[t.Name()] = true
		plugins = append(plugins, newGuardedTable(t, cfg.GenerateTimeout, slots, cfg.Logger))
	}
	return plugins, nil
}

// stopServer deregisters the extension and waits for osquery-go's Run to
// return, for at most limit.
//
// Shutdown is repeated until Run returns, because a Shutdown that arrives
// while Start is still registering finds no server to stop, and Start then
// goes on to serve.
func stopServer(server *osquery.ExtensionManagerServer, done <-chan error, limit time.Duration, logger *slog.Logger) {
	ctx := context.Background()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()

	for {
		if err := server.Shutdown(ctx); err != nil {
			// osqueryd returns an error status for a second
			// deregistration, so this is detail, not a failure.
			logger.DebugContext(ctx, "deregistering the extension failed", "error", err)
		}
		select {
		case <-done:
			return
		case <-deadline.C:
			logger.WarnContext(ctx, "extension server did not stop in time", "timeout", limit)
			return
		case <-retry.C:
		}
	}
}
