package remoteservicelaunches_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osquery/osquery-go/plugin/table"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/sources"
	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

// oversizedQuerier returns rows for every Sysmon query, whatever its
// LIMIT, as an osquery that ignored the row cap would, and nothing for
// the other sources.
type oversizedQuerier struct {
	rows []map[string]string
}

func (q oversizedQuerier) QueryRows(_ context.Context, sql string) ([]map[string]string, error) {
	if strings.Contains(sql, "unix_time") {
		return []map[string]string{{"unix_time": strconv.Itoa(badClock)}}, nil
	}
	if strings.Contains(sql, "sysmon") {
		return q.rows, nil
	}
	return nil, nil
}

// distinctChildRows returns n Sysmon process creations of different
// children of services.exe, all within the lookback.
func distinctChildRows(n int) []map[string]string {
	rows := make([]map[string]string, n)
	for i := range rows {
		fields := childData()
		fields["ProcessGuid"] = fmt.Sprintf("{d273d0f0-8078-5f67-%04x-%012x}", i%0xffff, i)
		fields["ProcessId"] = strconv.Itoa(10000 + i)
		fields["CommandLine"] = fmt.Sprintf("cmd.exe /c child %d", i)
		rows[i] = childRow(badHost, badChildDatetime, eventDataJSON(fields))
	}
	return rows
}

// peakHeapGrowth runs generate and returns by how much the live heap grew
// above its level before the call, at the highest of frequent samples.
func peakHeapGrowth(t *testing.T, generate func()) uint64 {
	t.Helper()

	var stats runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&stats)
	baseline := stats.HeapAlloc

	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		var sample runtime.MemStats
		for {
			runtime.ReadMemStats(&sample)
			peak = max(peak, sample.HeapAlloc)
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
		}
	})

	generate()
	close(stop)
	wg.Wait()

	runtime.ReadMemStats(&stats)
	peak = max(peak, stats.HeapAlloc)
	if peak < baseline {
		return 0
	}
	return peak - baseline
}

// TestRowCapBoundsMemory gives the table ten times its row cap from a
// querier that ignores LIMIT. The cap must bound what the table decodes
// and correlates: the heap may grow no more than a small multiple of its
// growth for input at the cap. The rows of the oversized input are the
// same maps as the capped input's, so that the input itself stays small.
func TestRowCapBoundsMemory(t *testing.T) {
	// Not parallel: other tests would move the heap that it measures.
	const maxRows = 5_000

	atCap := distinctChildRows(maxRows)
	var tenTimes []map[string]string
	for range 10 {
		tenTimes = append(tenTimes, atCap...)
	}

	var oversizedLogs skipLog
	growth := func(rows []map[string]string, logs *skipLog) (uint64, *remoteservicelaunches.Table) {
		tbl := remoteservicelaunches.New(remoteservicelaunches.Config{
			Querier:          oversizedQuerier{rows: rows},
			Sources:          []sources.Source{sources.NewSysmon(), sources.NewSecurity()},
			LocalHost:        "test-host",
			MaxRowsPerSource: maxRows,
			Logger:           slog.New(slog.NewJSONHandler(logs, nil)),
		})
		grown := peakHeapGrowth(t, func() {
			_, err := tbl.Generate(t.Context(), table.QueryContext{})
			require.NoError(t, err)
		})
		return grown, tbl
	}

	// The first call warms up caches the second would otherwise pay for.
	growth(atCap, &skipLog{})
	base, _ := growth(atCap, &skipLog{})
	oversized, tbl := growth(tenTimes, &oversizedLogs)
	t.Logf("peak heap growth: %d KiB at the cap, %d KiB at ten times the cap", base>>10, oversized>>10)

	require.Less(t, oversized, 3*base+(8<<20),
		"ten times the cap grew the heap by %d KiB, at the cap by %d KiB", oversized>>10, base>>10)

	// Reaching the cap is logged and recorded for the sources table.
	require.Contains(t, oversizedLogs.messages(t), "source row cap reached, older events were not read")
	read, ok := tbl.Config().Stats.Last(sources.NewSysmon().Name())
	require.True(t, ok)
	require.Equal(t, maxRows, read.RowCap)
	require.Equal(t, maxRows, read.Rows)
}
