// Package testkit holds the small test doubles tokend's tests share: a clock
// that moves only when told to, a buffer several goroutines may write to, and
// the per-operation CPU time its benchmarks report.
// It is internal, for tests only; its values are safe for concurrent use.
package testkit
