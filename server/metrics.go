package server

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/service"
)

// metrics counts requests per transport, method and outcome and exposes them
// in the Prometheus text format. Labels hold method names and status codes
// only: never a token, secret or id.
type metrics struct {
	svc   *service.Service
	start time.Time

	mu     sync.RWMutex
	series map[seriesKey]*series
}

type seriesKey struct {
	transport, method, code string
}

type series struct {
	count    atomic.Uint64
	nanosSum atomic.Uint64
}

func newMetrics(svc *service.Service) *metrics {
	return &metrics{svc: svc, start: time.Now(), series: make(map[seriesKey]*series)}
}

// observe records one finished request.
func (m *metrics) observe(transport, method, code string, took time.Duration) {
	k := seriesKey{transport, method, code}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s == nil {
		m.mu.Lock()
		if s = m.series[k]; s == nil {
			s = &series{}
			m.series[k] = s
		}
		m.mu.Unlock()
	}
	s.count.Add(1)
	s.nanosSum.Add(uint64(took.Nanoseconds()))
}

func (m *metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w)
}

func (m *metrics) write(w io.Writer) {
	m.mu.RLock()
	keys := make([]seriesKey, 0, len(m.series))
	for k := range m.series {
		keys = append(keys, k)
	}
	m.mu.RUnlock()
	slices.SortFunc(keys, func(a, b seriesKey) int {
		if a.transport != b.transport {
			return compare(a.transport, b.transport)
		}
		if a.method != b.method {
			return compare(a.method, b.method)
		}
		return compare(a.code, b.code)
	})
	fmt.Fprintln(w, "# HELP tokend_requests_total Requests served, by transport, method and result code.")
	fmt.Fprintln(w, "# TYPE tokend_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "tokend_requests_total{transport=%q,method=%q,code=%q} %d\n", k.transport, k.method, k.code, m.get(k).count.Load())
	}
	fmt.Fprintln(w, "# HELP tokend_request_seconds_total Time spent serving requests, by transport, method and result code.")
	fmt.Fprintln(w, "# TYPE tokend_request_seconds_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "tokend_request_seconds_total{transport=%q,method=%q,code=%q} %g\n", k.transport, k.method, k.code, float64(m.get(k).nanosSum.Load())/1e9)
	}
	fmt.Fprintln(w, "# HELP tokend_tokens Tokens in the in-memory introspection index.")
	fmt.Fprintln(w, "# TYPE tokend_tokens gauge")
	fmt.Fprintf(w, "tokend_tokens %d\n", m.svc.TokenCount())
	counts := m.svc.TokensByHashKey()
	for _, id := range m.svc.HashKeyIDs() {
		counts[id] += 0 // the key file's keys show even when unused
	}
	writeHashKeyMetric(w, counts)
	fmt.Fprintln(w, "# HELP tokend_index_staleness_seconds How long ago the introspection index was last known to hold every committed change (0 for a local store).")
	fmt.Fprintln(w, "# TYPE tokend_index_staleness_seconds gauge")
	fmt.Fprintf(w, "tokend_index_staleness_seconds %g\n", m.svc.IndexStaleness().Seconds())
	fmt.Fprintln(w, "# HELP tokend_tokens_expiring_soon API tokens that expire within 7 days (and have not expired).")
	fmt.Fprintln(w, "# TYPE tokend_tokens_expiring_soon gauge")
	fmt.Fprintf(w, "tokend_tokens_expiring_soon %d\n", m.svc.ExpiringTokens(7*24*time.Hour))
	fmt.Fprintln(w, "# HELP tokend_uptime_seconds Time since the server started.")
	fmt.Fprintln(w, "# TYPE tokend_uptime_seconds gauge")
	fmt.Fprintf(w, "tokend_uptime_seconds %g\n", time.Since(m.start).Seconds())
}

func (m *metrics) get(k seriesKey) *series {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.series[k]
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeHashKeyMetric writes the token count per hash key id ("unrecorded"
// for tokens stored before key ids were).
func writeHashKeyMetric(w io.Writer, counts map[string]int) {
	fmt.Fprintln(w, "# HELP tokend_tokens_by_hash_key Tokens whose secret is hashed under each hash key; a key at 0 can leave the key file.")
	fmt.Fprintln(w, "# TYPE tokend_tokens_by_hash_key gauge")
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		label := cmp.Or(id, "unrecorded")
		fmt.Fprintf(w, "tokend_tokens_by_hash_key{key_id=%q} %d\n", label, counts[id])
	}
}
