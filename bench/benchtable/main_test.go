package main

import (
	"bytes"
	"strings"
	"testing"
)

// sample is `go test -bench` output of two packages with -count 3.
const sample = `goos: linux
goarch: amd64
pkg: github.com/svclaunch/svclaunch/internal/detect
cpu: AMD EPYC
BenchmarkDetect/1000         	    2000	    400000 ns/op	         3.000 detections	  253680 B/op	      34 allocs/op
BenchmarkDetect/1000         	    2000	    500000 ns/op	         3.000 detections	  253680 B/op	      34 allocs/op
BenchmarkDetect/1000         	    2000	    450000 ns/op	         3.000 detections	  253680 B/op	      34 allocs/op
BenchmarkDetect/10000        	     200	   4500000 ns/op	        29.00 detections	  874688 B/op	      49 allocs/op
BenchmarkDetect/10000        	     200	   4600000 ns/op	        29.00 detections	  874688 B/op	      49 allocs/op
BenchmarkDetect/10000        	     200	   4400000 ns/op	        29.00 detections	  874688 B/op	      49 allocs/op
PASS
pkg: github.com/svclaunch/svclaunch/bench
BenchmarkRemoteServiceLaunches/rows=5000/table-2   	       3	 100000000 ns/op	        60.00 peak-RSS-MB	 55715160 B/op	  362753 allocs/op
BenchmarkRemoteServiceLaunches/rows=5000/table-sysmon-only-2   	       3	 50000000 ns/op	        60.00 peak-RSS-MB	 55715160 B/op	  362753 allocs/op
BenchmarkRemoteServiceLaunches/rows=5000/sql-join/autoindex=off-2        	       1	 20000000000 ns/op	        200.0 table-speedup	        400.0 sysmon-table-speedup	   85024 B/op	    1374 allocs/op
`

func TestParseGroupsRuns(t *testing.T) {
	results, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 5 {
		t.Fatalf("got %d results, want 5", len(results))
	}

	first := results[0]
	if first.name != "Detect" || first.size != "1000" || first.n != 1000 {
		t.Errorf("first result is %q size %q n %v, want Detect size 1000", first.name, first.size, first.n)
	}
	if got := median(first.values["ns/op"]); got != 450000 {
		t.Errorf("median ns/op = %v, want 450000", got)
	}

	join := results[4]
	if join.name != "RemoteServiceLaunches/sql-join/autoindex=off" || join.size != "rows=5000" {
		t.Errorf("GOMAXPROCS suffix or size not removed: name %q size %q", join.name, join.size)
	}
	if join.pkg != "github.com/svclaunch/svclaunch/bench" {
		t.Errorf("package = %q", join.pkg)
	}
}

func TestWriteTablesShowsExponentAndRatio(t *testing.T) {
	results, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeTables(&out, results, nil)
	text := out.String()

	// 450 µs to 4.5 ms over a tenfold size is an exponent of 1.
	if !strings.Contains(text, "| Detect | 10000 | 3 | 4.5 ms | 4.4 ms–4.6 ms |  | 874.7 kB | 49 |") {
		t.Errorf("missing the 10000 row with median and spread:\n%s", text)
	}
	if !strings.Contains(text, "| 1.00 |") {
		t.Errorf("missing the growth exponent 1.00:\n%s", text)
	}
	if !strings.Contains(text, "autoindex=off 200.0×") {
		t.Errorf("the table row does not show the SQL join's ratio:\n%s", text)
	}
	if !strings.Contains(text, "autoindex=off 400.0×") {
		t.Errorf("the Sysmon-only table row does not show its ratio:\n%s", text)
	}
	if !strings.Contains(text, "200.0×, 400.0× (Sysmon only)") {
		t.Errorf("the join row does not show both ratios:\n%s", text)
	}
	if !strings.Contains(text, "| Detect | 1000 | detections | 3 | 3–3 |") {
		t.Errorf("missing the custom metric row:\n%s", text)
	}
}

func TestSplitNameWithoutSize(t *testing.T) {
	name, size, n := splitName("Render/squirrel-and-render")
	if name != "Render/squirrel-and-render" || size != "" || n != 0 {
		t.Errorf("splitName = %q, %q, %v; want the name unchanged", name, size, n)
	}
}
