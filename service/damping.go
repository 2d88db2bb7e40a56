package service

import (
	"sync"
	"sync/atomic"
	"time"
)

// failureLimiter damps credential guessing: once a client address has failed
// authentication too often within a window, its further failures are
// answered with ResourceExhausted (HTTP 429) until the window ends, telling
// scanners to back off; valid credentials are never refused. Only addresses
// that failed are tracked, and successful calls never touch the limiter.
type failureLimiter struct {
	limit  int
	window time.Duration

	tracked atomic.Int64 // number of addresses in failures
	mu      sync.Mutex
	// failures maps a client address to its failures in the current window.
	failures map[string]*failureWindow
}

type failureWindow struct {
	start time.Time
	count int
}

// maxTrackedAddrs bounds the memory an attacker with many addresses can make
// the limiter use; beyond it, windows that have ended are swept first and
// then new addresses are not tracked.
const maxTrackedAddrs = 100_000

func newFailureLimiter(limit int, window time.Duration) *failureLimiter {
	return &failureLimiter{limit: limit, window: window, failures: make(map[string]*failureWindow)}
}

// retryAfter reports how long addr must wait, or 0 when it may try now.
func (l *failureLimiter) retryAfter(addr string, now time.Time) time.Duration {
	if l == nil || addr == "" || l.tracked.Load() == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.failures[addr]
	if w == nil || w.count < l.limit {
		return 0
	}
	if end := w.start.Add(l.window); now.Before(end) {
		return end.Sub(now)
	}
	return 0
}

// fail records a failed authentication from addr.
func (l *failureLimiter) fail(addr string, now time.Time) {
	if l == nil || addr == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.failures[addr]
	if w != nil && !now.Before(w.start.Add(l.window)) {
		w.start, w.count = now, 0
	}
	if w == nil {
		if len(l.failures) >= maxTrackedAddrs {
			l.sweep(now)
			if len(l.failures) >= maxTrackedAddrs {
				return
			}
		}
		w = &failureWindow{start: now}
		l.failures[addr] = w
		l.tracked.Store(int64(len(l.failures)))
	}
	w.count++
}

// damped counts the addresses whose failures are refused at now.
func (l *failureLimiter) damped(now time.Time) int {
	if l == nil || l.tracked.Load() == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.failures {
		if w.count >= l.limit && now.Before(w.start.Add(l.window)) {
			n++
		}
	}
	return n
}

// sweep forgets windows that have ended. l.mu is held.
func (l *failureLimiter) sweep(now time.Time) {
	for addr, w := range l.failures {
		if !now.Before(w.start.Add(l.window)) {
			delete(l.failures, addr)
		}
	}
	l.tracked.Store(int64(len(l.failures)))
}
