package server

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage"
)

// metrics are tokend's Prometheus metrics, in a registry of the server's own
// (two servers in one process, as in tests, do not share counters). Labels
// hold transport names, RPC method names, route patterns and status codes
// only: never a token, secret, id or raw path.
type metrics struct {
	registry *prometheus.Registry
	// rpcs and rpcSeconds count the calls of the gRPC service, by
	// transport ("grpc", or "rest" through the gateway or the
	// introspection fast path), full method name
	// and gRPC code name.
	rpcs       *prometheus.CounterVec
	rpcSeconds *prometheus.HistogramVec
	// httpRequests and httpSeconds count every HTTP request, by the route
	// pattern it matched and HTTP status.
	httpRequests *prometheus.CounterVec
	httpSeconds  *prometheus.HistogramVec

	// Series resolved by their label values, kept so that a request does
	// not hash its labels again for each of its two metrics.
	rpcSeries  seriesCache[rpcKey]
	httpSeries seriesCache[httpKey]
}

type rpcKey struct{ transport, method, code string }

type httpKey struct{ route, status string }

// series is a request counter and latency histogram of one label set.
type series struct {
	count   prometheus.Counter
	seconds prometheus.Observer
}

// seriesCache maps label values to their series. Labels are bounded (method
// names, route patterns, codes), and so is the cache.
type seriesCache[K comparable] struct {
	mu sync.RWMutex
	m  map[K]series
}

func (c *seriesCache[K]) get(k K, resolve func() series) series {
	c.mu.RLock()
	s, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return s
	}
	s = resolve()
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]series)
	}
	c.m[k] = s
	c.mu.Unlock()
	return s
}

// observeRPC records one call of the service.
func (m *metrics) observeRPC(transport, method, code string, took time.Duration) {
	s := m.rpcSeries.get(rpcKey{transport, method, code}, func() series {
		return series{m.rpcs.WithLabelValues(transport, method, code), m.rpcSeconds.WithLabelValues(transport, method, code)}
	})
	s.count.Inc()
	s.seconds.Observe(took.Seconds())
}

// observeHTTP records one HTTP request.
func (m *metrics) observeHTTP(route, status string, took time.Duration) {
	s := m.httpSeries.get(httpKey{route, status}, func() series {
		return series{m.httpRequests.WithLabelValues(route, status), m.httpSeconds.WithLabelValues(route, status)}
	})
	s.count.Inc()
	s.seconds.Observe(took.Seconds())
}

// latencyBuckets span what a call takes here: from an introspection
// answered from memory (tens of microseconds) to a write waiting on a slow
// disk.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func newMetrics(svc *service.Service) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_rpc_requests_total",
			Help: "Calls of tokend.v1.TokenService, by transport (grpc, or rest through the gateway or the introspection fast path), method and gRPC code.",
		}, []string{"transport", "method", "code"}),
		rpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokend_rpc_request_duration_seconds",
			Help:    "Time to answer a call of tokend.v1.TokenService, by transport, method and gRPC code.",
			Buckets: latencyBuckets,
		}, []string{"transport", "method", "code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_http_requests_total",
			Help: "HTTP requests, by the route pattern they matched and HTTP status.",
		}, []string{"route", "status"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokend_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and HTTP status.",
			Buckets: latencyBuckets,
		}, []string{"route", "status"}),
	}
	m.registry.MustRegister(
		m.rpcs, m.rpcSeconds, m.httpRequests, m.httpSeconds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&serviceCollector{svc: svc},
	)
	return m
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// serviceCollector reads the service's state at each scrape.
type serviceCollector struct {
	svc *service.Service
}

var (
	tokensDesc = prometheus.NewDesc("tokend_tokens",
		"Tokens in the in-memory index, by kind and type.", []string{"kind", "type"}, nil)
	indexDesc = prometheus.NewDesc("tokend_index_tokens",
		"Tokens in the in-memory introspection index.", nil, nil)
	expiringDesc = prometheus.NewDesc("tokend_tokens_expiring_soon",
		"Valid tokens that expire within the next 7 days.", nil, nil)
	flushAgeDesc = prometheus.NewDesc("tokend_last_used_flush_age_seconds",
		"Seconds since last-use times were last written to the store without error.", nil, nil)
	dampedDesc = prometheus.NewDesc("tokend_damped_addresses",
		"Client addresses whose failed authentications are being refused (429 / ResourceExhausted).", nil, nil)
	hashKeyDesc = prometheus.NewDesc("tokend_tokens_by_hash_key",
		"Tokens whose secret is hashed under each hash key (key_id \"unrecorded\": stored before key ids were); a key no token uses any more can leave the key file.",
		[]string{"key_id"}, nil)
	stalenessDesc = prometheus.NewDesc("tokend_index_staleness_seconds",
		"How long ago the introspection index was last known to hold every committed change (0 for a local store).", nil, nil)
)

func (c *serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tokensDesc
	ch <- indexDesc
	ch <- expiringDesc
	ch <- flushAgeDesc
	ch <- dampedDesc
	ch <- hashKeyDesc
	ch <- stalenessDesc
}

func (c *serviceCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	st := c.svc.Stats(now)
	for _, kind := range []storage.Kind{storage.KindAPI, storage.KindAdmin} {
		for _, typ := range []storage.Type{storage.TypeReadOnly, storage.TypeFullAccess, storage.TypeCustom} {
			n := st.Tokens[service.TokenClass{Kind: kind, Type: typ}]
			ch <- prometheus.MustNewConstMetric(tokensDesc, prometheus.GaugeValue, float64(n), kindLabel(kind), typeLabel(typ))
		}
	}
	ch <- prometheus.MustNewConstMetric(indexDesc, prometheus.GaugeValue, float64(c.svc.TokenCount()))
	ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, float64(st.Expiring))
	ch <- prometheus.MustNewConstMetric(flushAgeDesc, prometheus.GaugeValue, now.Sub(st.LastFlush).Seconds())
	ch <- prometheus.MustNewConstMetric(dampedDesc, prometheus.GaugeValue, float64(st.DampedAddrs))
	counts := c.svc.TokensByHashKey()
	for _, id := range c.svc.HashKeyIDs() {
		counts[id] += 0 // the key file's keys show even when unused
	}
	for id, n := range counts {
		if id == "" {
			id = "unrecorded"
		}
		ch <- prometheus.MustNewConstMetric(hashKeyDesc, prometheus.GaugeValue, float64(n), id)
	}
	ch <- prometheus.MustNewConstMetric(stalenessDesc, prometheus.GaugeValue, c.svc.IndexStaleness().Seconds())
}

func kindLabel(k storage.Kind) string {
	if k == storage.KindAdmin {
		return "admin"
	}
	return "api"
}

func typeLabel(t storage.Type) string {
	switch t {
	case storage.TypeFullAccess:
		return "full_access"
	case storage.TypeCustom:
		return "custom"
	}
	return "read_only"
}
