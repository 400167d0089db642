// Command benchtable reads the output of `go test -bench` (several runs of
// each benchmark, as -count N writes them) and prints one Markdown table.
// Per benchmark and size it shows the median time per operation with its
// spread, the median B/op and allocs/op, the peak memory, the ratio to the
// pure-SQL join and the growth exponent between consecutive sizes. A second
// table lists the medians of the benchmarks' own metrics.
//
// Usage:
//
//	benchtable [-rss] FILE...
//
// With -rss, a file NAME.time next to each FILE NAME.txt that holds the
// output of `/usr/bin/time -v` adds the package's maximum resident set size,
// shown where a benchmark reports no peak of its own.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	rss := flag.Bool("rss", false, "read each FILE's package peak memory from FILE with .txt replaced by .time (output of /usr/bin/time -v)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: benchtable [-rss] FILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	var results []*result
	packageRSS := map[string]float64{}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		parsed, err := parse(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchtable: reading %s: %v\n", path, err)
			os.Exit(1)
		}
		results = append(results, parsed...)

		if *rss {
			timePath := strings.TrimSuffix(path, ".txt") + ".time"
			if kilobytes, ok := readMaxRSS(timePath); ok {
				for _, r := range parsed {
					packageRSS[r.pkg] = kilobytes * 1024 / 1e6
				}
			}
		}
	}

	writeTables(os.Stdout, results, packageRSS)
}

// result collects every run of one benchmark.
type result struct {
	pkg string
	// name is the benchmark's name without "Benchmark", its size and the
	// GOMAXPROCS suffix; size is the size element ("" when none) and n
	// its number.
	name, size string
	n          float64
	// values holds each run's value per unit, in run order.
	values map[string][]float64
	units  []string
}

var (
	// benchmarkLine matches a result line: name, iterations, then
	// value-unit pairs.
	benchmarkLine = regexp.MustCompile(`^Benchmark(\S+)\s+(\d+)\s+(.*)$`)
	// procsSuffix is the -GOMAXPROCS suffix that go test appends when
	// GOMAXPROCS is not 1.
	procsSuffix = regexp.MustCompile(`-\d+$`)
	// sizeElement is a name element that gives a size: "1000",
	// "rows=50000" or "MB=101".
	sizeElement = regexp.MustCompile(`^(?:[A-Za-z]+=)?(\d+)$`)
)

// parse reads `go test -bench` output and returns the results in the order
// their first run appears.
func parse(r io.Reader) ([]*result, error) {
	var results []*result
	byKey := map[string]*result{}
	pkg := ""

	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if rest, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(rest)
			continue
		}
		match := benchmarkLine.FindStringSubmatch(line)
		if match == nil {
			continue
		}

		name, size, n := splitName(procsSuffix.ReplaceAllString(match[1], ""))
		key := pkg + " " + name + " " + size
		res, ok := byKey[key]
		if !ok {
			res = &result{pkg: pkg, name: name, size: size, n: n, values: map[string][]float64{}}
			byKey[key] = res
			results = append(results, res)
		}

		fields := strings.Fields(match[3])
		for i := 0; i+1 < len(fields); i += 2 {
			value, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("invalid value %q in %q", fields[i], line)
			}
			unit := fields[i+1]
			if _, seen := res.values[unit]; !seen {
				res.units = append(res.units, unit)
			}
			res.values[unit] = append(res.values[unit], value)
		}
	}
	return results, scanner.Err()
}

// splitName removes the size element from a benchmark name and returns the
// rest, the element and its number (0 when there is none).
func splitName(full string) (name, size string, n float64) {
	elements := strings.Split(full, "/")
	for i, element := range elements {
		match := sizeElement.FindStringSubmatch(element)
		if match == nil {
			continue
		}
		n, _ = strconv.ParseFloat(match[1], 64)
		rest := slices.Delete(slices.Clone(elements), i, i+1)
		return strings.Join(rest, "/"), element, n
	}
	return full, "", 0
}

// standardUnits are the columns of the main table; every other unit goes to
// the table of metrics.
var standardUnits = []string{"ns/op", "cpu-ns/op", "B/op", "allocs/op", "MB/s", "peak-RSS-MB", "table-speedup", "sysmon-table-speedup"}

func writeTables(w io.Writer, results []*result, packageRSS map[string]float64) {
	fmt.Fprintln(w, "| benchmark | size | runs | time/op median | spread min–max | CPU/op | B/op | allocs/op | peak memory | SQL join time ÷ table time | growth exponent |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for i, r := range results {
		times := r.values["ns/op"]
		low, high := minMax(times)
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s–%s | %s | %s | %s | %s | %s | %s |\n",
			r.name, r.size, len(times),
			formatNanos(median(times)), formatNanos(low), formatNanos(high), formatNanos(median(r.values["cpu-ns/op"])),
			formatBytes(median(r.values["B/op"])), formatCount(median(r.values["allocs/op"])),
			peakMemory(r, packageRSS), sqlRatio(r, results), exponent(r, results[:i]))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| benchmark | size | metric | median | spread min–max |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range results {
		for _, unit := range r.units {
			if slices.Contains(standardUnits, unit) {
				continue
			}
			values := r.values[unit]
			low, high := minMax(values)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s–%s |\n", r.name, r.size, unit,
				formatMetric(unit, median(values)), formatMetric(unit, low), formatMetric(unit, high))
		}
	}
}

// peakMemory returns the benchmark's own peak resident set size, or else
// the package test binary's maximum, marked as such.
func peakMemory(r *result, packageRSS map[string]float64) string {
	if values := r.values["peak-RSS-MB"]; len(values) > 0 {
		return fmt.Sprintf("%.0f MB", median(values))
	}
	if mb, ok := packageRSS[r.pkg]; ok {
		return fmt.Sprintf("%.0f MB (package max)", mb)
	}
	return ""
}

// sqlRatio returns, for a SQL join, its time divided by the time of each
// table variant in the same run, and for a table variant the ratios of the
// joins at its size. The joins report the ratio to the table reading every
// source as table-speedup, and to the table reading Sysmon alone as
// sysmon-table-speedup. Where both report CPU time, the ratio of the median
// CPU times follows, because other processes on the machine stretch wall
// time.
func sqlRatio(r *result, results []*result) string {
	if values := r.values["table-speedup"]; len(values) > 0 {
		ratio := fmt.Sprintf("%.1f×", median(values))
		if sysmon := r.values["sysmon-table-speedup"]; len(sysmon) > 0 {
			ratio += fmt.Sprintf(", %.1f× (Sysmon only)", median(sysmon))
		}
		return ratio
	}

	unit := "table-speedup"
	if strings.Contains(lastElement(r.name), "sysmon") {
		unit = "sysmon-table-speedup"
	}
	var ratios []string
	for _, other := range results {
		values := other.values[unit]
		if len(values) == 0 || other.pkg != r.pkg || other.size != r.size || !isSibling(r.name, other.name) {
			continue
		}
		ratio := fmt.Sprintf("%.1f×", median(values))
		if joinCPU, tableCPU := median(other.values["cpu-ns/op"]), median(r.values["cpu-ns/op"]); tableCPU > 0 && joinCPU > 0 {
			ratio += fmt.Sprintf(" (CPU %.1f×)", joinCPU/tableCPU)
		}
		ratios = append(ratios, fmt.Sprintf("%s %s", lastElement(other.name), ratio))
	}
	return strings.Join(ratios, ", ")
}

// isSibling reports whether two names share their first element, as the
// table and the SQL joins of one benchmark do.
func isSibling(a, b string) bool {
	first := func(s string) string { return strings.SplitN(s, "/", 2)[0] }
	return a != b && first(a) == first(b)
}

func lastElement(name string) string {
	return name[strings.LastIndex(name, "/")+1:]
}

// exponent returns the growth exponent log(t2/t1)/log(n2/n1) from the
// nearest smaller size of the same benchmark, which an earlier result holds.
// It uses the median CPU times where both sizes report them, because other
// processes stretch wall time, and the median wall times otherwise.
func exponent(r *result, earlier []*result) string {
	if r.n == 0 {
		return ""
	}
	var previous *result
	for _, other := range earlier {
		if other.pkg == r.pkg && other.name == r.name && other.n > 0 && other.n < r.n && (previous == nil || other.n > previous.n) {
			previous = other
		}
	}
	if previous == nil {
		return ""
	}

	unit, suffix := "ns/op", ""
	if len(previous.values["cpu-ns/op"]) > 0 && len(r.values["cpu-ns/op"]) > 0 {
		unit, suffix = "cpu-ns/op", " (CPU)"
	}
	t1, t2 := median(previous.values[unit]), median(r.values[unit])
	if t1 <= 0 || t2 <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f%s", math.Log(t2/t1)/math.Log(r.n/previous.n), suffix)
}

func median(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sorted := slices.Sorted(slices.Values(values))
	middle := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[middle]
	}
	return (sorted[middle-1] + sorted[middle]) / 2
}

func minMax(values []float64) (float64, float64) {
	if len(values) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(values), slices.Max(values)
}

// formatNanos writes a time in the largest unit that keeps it at 1 or more.
func formatNanos(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return ""
	case ns >= 1e9:
		return fmt.Sprintf("%.3g s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	}
	return fmt.Sprintf("%.3g ns", ns)
}

func formatBytes(b float64) string {
	switch {
	case math.IsNaN(b):
		return ""
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}

func formatCount(n float64) string {
	if math.IsNaN(n) {
		return ""
	}
	return strconv.FormatFloat(n, 'f', 0, 64)
}

// formatMetric writes a custom metric: times and bytes in readable units,
// anything else with four significant digits.
func formatMetric(unit string, v float64) string {
	switch {
	case strings.HasSuffix(unit, "ns/op"):
		return formatNanos(v)
	case strings.HasSuffix(unit, "-B"):
		return formatBytes(v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// readMaxRSS returns the "Maximum resident set size (kbytes)" of a
// /usr/bin/time -v report.
func readMaxRSS(path string) (float64, bool) {
	content, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(content), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes):"); ok {
			kilobytes, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return kilobytes, err == nil
		}
	}
	return 0, false
}
