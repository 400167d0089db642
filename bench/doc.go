// Package bench holds the benchmarks that span several packages: the
// remote_service_launches table end to end through the osquery stand-in,
// the pure-SQL join that a user would write instead, and the offline hunt
// over a large export. The script bench/run runs them together with the
// package benchmarks and prints one table; docs/benchmarks.md records the
// results.
//
// The package has no code of its own outside its tests.
package bench
