// Package testkit holds the small test doubles tokend's tests share: a clock
// that moves only when told to and a buffer several goroutines may write to.
// It is internal, for tests only; its values are safe for concurrent use.
package testkit
