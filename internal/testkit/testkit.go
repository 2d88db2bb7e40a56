package testkit

import (
	"bytes"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Clock is a clock for tests: it only moves when told to. Its Now method is
// what service.Config.Now takes.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// SyncBuffer is an io.Writer that a server's goroutines and the test reading
// it can share, such as a log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// CPUTime returns the CPU time (user and system) the process has used.
// Benchmarks report it per operation: on a machine shared with other work it
// varies far less than the wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU starts counting the process's CPU time; the function it returns
// reports it per operation of b, in unit: time.Nanosecond ("cpu-ns/op") or
// time.Microsecond ("cpu-µs/op"); any other unit fails the benchmark, since
// its figures would be reported under the wrong name.
func ReportCPU(b *testing.B, unit time.Duration) func() {
	b.Helper()
	var name string
	switch unit {
	case time.Nanosecond:
		name = "cpu-ns/op"
	case time.Microsecond:
		name = "cpu-µs/op"
	default:
		b.Fatalf("testkit.ReportCPU: unit %v: want time.Nanosecond or time.Microsecond", unit)
	}
	start := CPUTime()
	return func() {
		b.ReportMetric(float64(CPUTime()-start)/float64(unit)/float64(b.N), name)
	}
}
