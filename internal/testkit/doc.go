// Package testkit holds the small helpers tokend's tests and benchmarks
// share: a clock that moves only when told to, a buffer several goroutines
// may write to, and the process's CPU time, which benchmarks report per
// operation because it varies far less than wall time on a shared machine.
// It is internal, for tests only; its values are safe for concurrent use.
package testkit
