package osquerytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go/gen/osquery"

	"github.com/svclaunch/svclaunch/internal/engine"
)

// Defaults of the matching osqueryd flags.
const (
	// DefaultTimeout is osqueryd's --extensions_timeout default.
	DefaultTimeout = 3 * time.Second

	// DefaultInterval is osqueryd's --extensions_interval default.
	DefaultInterval = 3 * time.Second

	// DefaultCallTimeout is osqueryd's --thrift_timeout default.
	DefaultCallTimeout = 300 * time.Second

	// DefaultVersion is the osquery release whose behaviour the stand-in follows.
	DefaultVersion = "5.23.1"
)

// thriftBufferSize is the buffer of osqueryd's Thrift connections: its
// server and its clients wrap each socket in a C++ TBufferedTransport
// (osquery/extensions/impl_thrift.cpp), whose default buffer is 512 bytes
// (DEFAULT_BUFFER_SIZE in thrift's TBufferTransports.h).
const thriftBufferSize = 512

// minInterval is the shortest watcher interval osqueryd allows
// (ExtensionWatcher's constructor raises shorter ones to 200 ms).
const minInterval = 200 * time.Millisecond

// maxSocketPathLength is osquery-go's MaxSocketPathCharacters. osquery-go
// rejects longer manager paths because it appends ".<uuid>" to them, and macOS
// limits a Unix socket path to 103 bytes.
const maxSocketPathLength = 97

// Options configures a stand-in. The zero value behaves like osqueryd with
// default flags.
type Options struct {
	// Logger receives the stand-in's starts, stops, registrations, removals
	// and errors. Nil discards logs.
	Logger *slog.Logger

	// Timeout is --extensions_timeout: how long the watcher waits for a newly
	// registered extension's socket before its first ping. LaunchExtension
	// passes it as --timeout in whole seconds. Zero means DefaultTimeout.
	Timeout time.Duration

	// Interval is --extensions_interval: the time between two health checks
	// of every extension. LaunchExtension passes it as --interval in whole
	// seconds, rounded up. Zero means DefaultInterval, and values under 200 ms are
	// raised to 200 ms, as osqueryd does.
	Interval time.Duration

	// CallTimeout is --thrift_timeout: the send and receive timeout of every
	// call from the stand-in to an extension. Zero means DefaultCallTimeout.
	CallTimeout time.Duration

	// Version is the osquery version reported for the core in
	// osquery_extensions. Empty means DefaultVersion.
	Version string

	// ExtensionOutput receives the stdout and stderr of extensions started by
	// LaunchExtension. Nil means this process's stderr, as osqueryd's children
	// inherit it.
	ExtensionOutput io.Writer
}

// withDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Interval < minInterval {
		o.Interval = minInterval
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.ExtensionOutput == nil {
		o.ExtensionOutput = os.Stderr
	}
	return o
}

// Server is a running osqueryd stand-in. Its methods are safe for concurrent
// use.
type Server struct {
	opts   Options
	log    *slog.Logger
	engine *engine.Engine

	// path is the manager socket (a named pipe path on Windows), and dir the
	// temporary directory that contains it ("" on Windows).
	path string
	dir  string

	listener  *connListener
	thrift    *thrift.TSimpleServer
	serveDone chan struct{}

	stopWatcher context.CancelFunc
	watcherDone chan struct{}

	// writeMu serialises every change to the registry and the engine writes
	// that follow it. It is always taken before mu. mu is never held during
	// an engine call, because a scan of an extension table runs inside an
	// engine call and needs mu to find the table's owner.
	writeMu sync.Mutex

	mu       sync.Mutex
	registry *registry
	stopped  bool
	changed  chan struct{} // closed and replaced whenever registry changes
	launched []*exec.Cmd
}

// Start creates a manager socket in a new temporary directory, serves osquery's
// ExtensionManager API on it and starts the extension watcher. The engine
// runs the SQL of Query calls and stores the osquery_extensions,
// osquery_registry, osquery_flags and osquery_info rows. The caller closes the
// engine after Close returns.
//
// ctx bounds the start-up only. Stop the server with Stop or Close.
func Start(ctx context.Context, eng *engine.Engine, opts Options) (*Server, error) {
	if eng == nil {
		return nil, errors.New("starting osquery stand-in: engine is nil")
	}
	opts = opts.withDefaults()

	path, dir, err := newManagerPath()
	if err != nil {
		return nil, fmt.Errorf("creating manager socket path: %w", err)
	}

	// The stand-in rejects what osquery-go would reject, so that a test
	// failure points here and not at the extension under test.
	if len(path) > maxSocketPathLength {
		removeDir(dir)
		return nil, fmt.Errorf("manager socket path %s has %d characters, more than the %d osquery-go accepts: set TMPDIR to a shorter directory", path, len(path), maxSocketPathLength)
	}

	s := &Server{
		opts:     opts,
		log:      opts.Logger.With("socket", path),
		engine:   eng,
		path:     path,
		dir:      dir,
		registry: newRegistry(),
		changed:  make(chan struct{}),
	}

	coreTables, err := s.listCoreTables(ctx)
	if err != nil {
		removeDir(dir)
		return nil, err
	}
	s.registry.addCoreTables(coreTables)

	if err := s.writeStartupTables(ctx, time.Now()); err != nil {
		removeDir(dir)
		return nil, err
	}
	if err := s.writeDiscoveryTables(ctx); err != nil {
		removeDir(dir)
		return nil, err
	}

	// Listening before Start returns lets callers connect at once, as
	// extensions started after osqueryd do.
	listener, err := listen(path)
	if err != nil {
		removeDir(dir)
		return nil, fmt.Errorf("listening on manager socket %s: %w", path, err)
	}
	s.listener = newConnListener(listener)

	// osqueryd buffers both directions of every connection, so a large
	// query result leaves in writes of 512 bytes or of one long string,
	// not in one write per field.
	processor := osquery.NewExtensionManagerProcessor(&handler{server: s})
	s.thrift = thrift.NewTSimpleServer4(processor, s.listener, thrift.NewTBufferedTransportFactory(thriftBufferSize), thrift.NewTBinaryProtocolFactoryConf(nil))
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.thrift.Serve(); err != nil {
			s.log.Error("extension manager stopped serving", "error", err)
		}
	}()

	watchCtx, stopWatcher := context.WithCancel(context.Background())
	s.stopWatcher = stopWatcher
	s.watcherDone = make(chan struct{})
	go func() {
		defer close(s.watcherDone)
		s.watch(watchCtx)
	}()

	s.log.Info("extension manager started", "interval", opts.Interval, "timeout", opts.Timeout)
	return s, nil
}

// Path returns the manager socket path, the value osqueryd passes to
// extensions as --socket.
func (s *Server) Path() string {
	return s.path
}

// ExtensionPath returns the socket path on which the extension with this UUID
// serves: the manager path followed by "." and the UUID, as osqueryd's
// getExtensionSocket builds it.
func (s *Server) ExtensionPath(uuid osquery.ExtensionRouteUUID) string {
	return extensionPath(s.path, uuid)
}

// Stop makes the stand-in disappear the way a killed osqueryd does: it stops
// the watcher, closes the manager socket and every open connection to it, and
// removes the socket file. Extensions see their next ping fail. Stop sends no
// shutdown requests to extensions and keeps the registry and the engine's
// rows as they were. Calling Stop again does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.notifyLocked()
	s.mu.Unlock()

	s.stopWatcher()
	<-s.watcherDone

	// Closing the connections first ends every request loop, so that
	// TSimpleServer.Stop, which waits for those loops, returns.
	s.listener.closeAll()
	if err := s.thrift.Stop(); err != nil {
		s.log.Error("stopping extension manager failed", "error", err)
	}
	<-s.serveDone

	s.log.Info("extension manager stopped")
}

// Close stops the stand-in if it is still running, kills extensions started by
// LaunchExtension that are still running and removes the temporary directory.
// It does not close the engine.
func (s *Server) Close() error {
	s.Stop()

	s.mu.Lock()
	launched := s.launched
	s.launched = nil
	s.mu.Unlock()

	// A killed osqueryd's children find the manager gone and exit on their
	// own, but a test must not leave processes behind when one does not.
	for _, cmd := range launched {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.log.Warn("killing extension process failed", "pid", cmd.Process.Pid, "error", err)
		}
	}

	if err := removeDir(s.dir); err != nil {
		return fmt.Errorf("removing manager socket directory %s: %w", s.dir, err)
	}
	return nil
}

// isStopped reports whether Stop has run.
func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// notifyLocked wakes every WaitForExtension call. The caller holds s.mu.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func removeDir(dir string) error {
	if dir == "" {
		return nil
	}
	return os.RemoveAll(dir)
}
