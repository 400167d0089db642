package bench

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osquery/osquery-go"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/svclaunch/svclaunch/extension"
	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/osq"
	"github.com/svclaunch/svclaunch/internal/osquerytest"
	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/pack"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// tableSizes are the windows_events rows per source. 50,000 is osquery's
// default --events_max.
var tableSizes = []int{5_000, 50_000}

// huntQueryName is the pack's pure-SQL hunt, the join a user writes without
// the extension.
const huntQueryName = "remote_service_launches_sysmon_hunt"

// clientTimeout bounds each call of the benchmark's osquery client. The
// SQL join without automatic indexes takes minutes at 50,000 rows.
const clientTimeout = 30 * time.Minute

// BenchmarkRemoteServiceLaunches runs `SELECT * FROM
// remote_service_launches` through the osquery stand-in over Thrift, with
// svclaunch's extension server running in-process, over a Windows Event
// Collector's windows_events holding rowsPerSource Sysmon rows and as many
// Security rows. Beside the standard figures the table sub-benchmark reports:
//
//   - query-ns/op: time spent in the extension's queries to osquery (the
//     SQL in the stand-in and the Thrift transfer of the rows);
//   - sql-ns/op: time of the same queries run directly on the engine,
//     measured separately after the timed loop: the stand-in's share of
//     query-ns/op, which osqueryd's own SQLite replaces in production;
//   - decode-ns/op: time spent decoding rows into events;
//   - detect-ns/op: time of the correlation (detect.Detect) over the same
//     events, measured separately after the timed loop;
//   - detect-share: detect-ns/op divided by the whole query's time;
//   - detections: rows returned.
//
// The table-sysmon-only sub-benchmark runs the same query with the Sysmon
// source alone, in a second stand-in over the same rows: it reads exactly
// the rows that the SQL join reads.
//
// The sql-join sub-benchmarks run the pack's hunt query over the same rows
// in the first stand-in, with SQLite's automatic indexes on and off. They
// report table-speedup, their time divided by the table's time in this
// run, and sysmon-table-speedup, divided by the Sysmon-only table's time.
func BenchmarkRemoteServiceLaunches(b *testing.B) {
	for _, rowsPerSource := range sizes(tableSizes) {
		b.Run("rows="+strconv.Itoa(rowsPerSource), func(b *testing.B) {
			fleet := generateFleet(rowsPerSource, 1)
			f := startFixture(b, fleet, sources.NewSysmon(), sources.NewSecurity())
			sysmonOnly := startFixture(b, fleet, sources.NewSysmon())

			var tableNanos, sysmonTableNanos float64
			b.Run("table", func(b *testing.B) {
				tableNanos = benchmarkTable(b, f)
			})
			b.Run("table-sysmon-only", func(b *testing.B) {
				sysmonTableNanos = benchmarkTable(b, sysmonOnly)
			})
			for _, automaticIndex := range []string{"on", "off"} {
				b.Run("sql-join/autoindex="+automaticIndex, func(b *testing.B) {
					perOp := benchmarkSQLJoin(b, f, automaticIndex)
					if tableNanos > 0 && sysmonTableNanos > 0 {
						b.ReportMetric(perOp/tableNanos, "table-speedup")
						b.ReportMetric(perOp/sysmonTableNanos, "sysmon-table-speedup")
					}
				})
			}
		})
	}
}

// benchmarkTable runs the table query and returns its time per query in
// nanoseconds.
func benchmarkTable(b *testing.B, f *fixture) float64 {
	const query = "SELECT * FROM remote_service_launches"

	// One query outside the timer warms SQLite's page cache.
	rows := f.query(b, query)
	f.queries.Store(0)
	f.decode.Store(0)

	b.ReportAllocs()
	report := measure(b)
	for b.Loop() {
		rows = f.query(b, query)
	}
	report()

	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	detectNanos := f.timeDetect(b)
	b.ReportMetric(float64(f.queries.Load())/float64(b.N), "query-ns/op")
	b.ReportMetric(f.timeSQL(b), "sql-ns/op")
	b.ReportMetric(float64(f.decode.Load())/float64(b.N), "decode-ns/op")
	b.ReportMetric(detectNanos, "detect-ns/op")
	b.ReportMetric(detectNanos/perOp, "detect-share")
	b.ReportMetric(float64(len(rows)), "detections")
	return perOp
}

// benchmarkSQLJoin runs the pack's hunt query with SQLite's automatic
// indexes on or off. osquery's virtual tables get no automatic index, but
// SQLite can still build one on the hunt's materialized CTEs. Off shows the
// cost of a join that SQLite cannot index. It returns the join's time per
// query in nanoseconds.
func benchmarkSQLJoin(b *testing.B, f *fixture, automaticIndex string) float64 {
	hunt, err := pack.Lookup(huntQueryName)
	if err != nil {
		b.Fatal(err)
	}
	// The stand-in runs both statements on one SQLite connection, so the
	// pragma applies to the join.
	query := "PRAGMA automatic_index = " + automaticIndex + "; " + hunt.SQL

	// No query warms the cache here, because the table's sub-benchmark
	// has read the same pages, and at 50,000 rows one join without
	// automatic indexes takes minutes.
	var rows []map[string]string
	b.ReportAllocs()
	report := measure(b)
	for b.Loop() {
		rows = f.query(b, query)
	}
	report()

	b.ReportMetric(float64(len(rows)), "detections")
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

// fixture is an osquery stand-in over a fleet's rows with svclaunch's
// extension registered, and a client that queries the stand-in as osqueryi
// or a scheduled query would.
type fixture struct {
	engine *engine.Engine
	client *osquery.ExtensionManagerClient
	// sources are the sources the table reads.
	sources []sources.Source

	// queries and decode sum the nanoseconds the table spent in its
	// queries to osquery and in decoding rows.
	queries, decode atomic.Int64

	// mu guards the events each source decoded last and the distinct
	// statements the table sent.
	mu         sync.Mutex
	decoded    map[string]*sources.Events
	statements map[string]bool
}

// startFixture loads the rows into an engine, starts the stand-in on it and
// runs the extension, its table reading the given sources, against the
// stand-in until the benchmark ends.
func startFixture(b *testing.B, fleet *fleetRows, tableSources ...sources.Source) *fixture {
	b.Helper()
	ctx := context.Background()

	eng, err := engine.Open(ctx, engine.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	if err := eng.Insert(ctx, "windows_events", fleet.all()); err != nil {
		b.Fatal(err)
	}
	eng.SetClock(fleet.clock)
	insertInterfaceAddresses(b, eng)

	server, err := osquerytest.Start(ctx, eng, osquerytest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { server.Close() })

	f := &fixture{engine: eng, sources: tableSources, decoded: map[string]*sources.Events{}, statements: map[string]bool{}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- extension.Run(runCtx, extension.Config{
			Socket:  server.Path(),
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			Version: "bench",
			Tables:  f.tables,
		})
	}()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("extension stopped with an error: %v", err)
		}
	})

	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := server.WaitForExtension(waitCtx, extension.Name); err != nil {
		b.Fatal(err)
	}

	f.client, err = osquery.NewClient(server.Path(), clientTimeout)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.client.Close)
	return f
}

// collectorAddresses are the collector's own addresses, which the hunt
// query reads from interface_addresses to tell the local side of a
// connection. No event of the fleet comes from them.
var collectorAddresses = []string{"127.0.0.1", "::1", "10.250.0.10"}

// insertInterfaceAddresses stores the collector's addresses in the engine's
// interface_addresses table.
func insertInterfaceAddresses(b *testing.B, eng *engine.Engine) {
	rows := make([]map[string]string, 0, len(collectorAddresses))
	for _, address := range collectorAddresses {
		rows = append(rows, map[string]string{"interface": "Ethernet", "address": address, "type": "dhcp"})
	}
	if err := eng.Insert(context.Background(), "interface_addresses", rows); err != nil {
		b.Fatal(err)
	}
}

// tables builds the remote_service_launches plugin with timed queries and
// decoders. The rows are a collector's Sysmon and Security events, so the
// fixture's sources replace the platform's default ones.
func (f *fixture) tables(q osq.Querier, logger *slog.Logger) ([]*table.Plugin, error) {
	var timed []sources.Source
	for _, source := range f.sources {
		timed = append(timed, &timedSource{Source: source, fixture: f})
	}
	t := remoteservicelaunches.New(remoteservicelaunches.Config{
		Querier:   &timedQuerier{next: q, fixture: f},
		Logger:    logger,
		Sources:   timed,
		LocalHost: "collector",
	})
	return []*table.Plugin{t.Plugin()}, nil
}

// query runs sql through the stand-in and fails the benchmark on an error.
func (f *fixture) query(b *testing.B, sql string) []map[string]string {
	rows, err := f.client.QueryRows(sql)
	if err != nil {
		b.Fatalf("query failed: %v", err)
	}
	return rows
}

// timeSQL runs the statements the table sent directly on the engine and
// returns their total time in nanoseconds. Every generate call sends the
// same statements, because the engine's clock is fixed.
func (f *fixture) timeSQL(b *testing.B) float64 {
	f.mu.Lock()
	statements := make([]string, 0, len(f.statements))
	for sql := range f.statements {
		statements = append(statements, sql)
	}
	f.mu.Unlock()

	start := time.Now()
	for _, sql := range statements {
		if _, err := f.engine.QueryRows(context.Background(), sql); err != nil {
			b.Fatalf("running %q on the engine: %v", sql, err)
		}
	}
	return float64(time.Since(start).Nanoseconds())
}

// timeDetect runs the correlation over the events of the last table query,
// as the table combines them, and returns the median time of a few runs in
// nanoseconds.
func (f *fixture) timeDetect(b *testing.B) float64 {
	f.mu.Lock()
	all := sources.NewEvents()
	for _, source := range f.sources {
		events, ok := f.decoded[source.Name()]
		if !ok {
			f.mu.Unlock()
			b.Fatalf("source %s decoded nothing", source.Name())
		}
		all.Add(events)
	}
	f.mu.Unlock()
	all.Orient()

	opts := detect.DefaultOptions()
	opts.HostAddresses = all.HostAddresses()
	const runs = 5
	durations := make([]time.Duration, runs)
	for i := range durations {
		start := time.Now()
		detect.Detect(all.Processes, all.Connections, opts)
		durations[i] = time.Since(start)
	}
	slices.Sort(durations)
	return float64(durations[runs/2].Nanoseconds())
}

// timedQuerier adds the time of each query to the fixture and records the
// statement.
type timedQuerier struct {
	next    osq.Querier
	fixture *fixture
}

func (q *timedQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	start := time.Now()
	rows, err := q.next.QueryRows(ctx, sql)
	q.fixture.queries.Add(time.Since(start).Nanoseconds())

	q.fixture.mu.Lock()
	q.fixture.statements[sql] = true
	q.fixture.mu.Unlock()
	return rows, err
}

// timedSource adds the time of each Decode to the fixture and keeps the
// decoded events.
type timedSource struct {
	sources.Source
	fixture *fixture
}

func (s *timedSource) Decode(rows []map[string]string) *sources.Events {
	start := time.Now()
	events := s.Source.Decode(rows)
	s.fixture.decode.Add(time.Since(start).Nanoseconds())

	s.fixture.mu.Lock()
	s.fixture.decoded[s.Name()] = events
	s.fixture.mu.Unlock()
	return events
}

// sizes returns the smallest size in -short mode, which CI uses to check
// that the benchmarks still run, and all of them otherwise.
func sizes(all []int) []int {
	if testing.Short() {
		return all[:1]
	}
	return all
}
