package etcd_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

// The benchmarks run on an embedded etcd (no fsync), or on the etcd at
// $TOKEND_TEST_ETCD_ENDPOINT (a real one, with fsync) under a fresh prefix.

// BenchmarkPropagation measures, between two stores on one etcd (two
// replicas), the time from a create acknowledged by one to its arrival in
// the other's change feed, and reports its median and 99th percentile.
func BenchmarkPropagation(b *testing.B) {
	endpoint, prefix := benchEtcd(b)
	a, r := openB(b, endpoint, prefix), openB(b, endpoint, prefix)
	var (
		mu      sync.Mutex
		arrived = make(map[string]time.Time)
		seen    = make(chan string, 1)
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Subscribe(ctx, func(c storage.Change) {
		mu.Lock()
		arrived[c.ID] = time.Now()
		mu.Unlock()
		select {
		case seen <- c.ID:
		default:
		}
	}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		tok := token(fmt.Sprintf("propagated %d", i))
		if err := a.CreateToken(ctx, tok, nil); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			mu.Lock()
			at, ok := arrived[tok.ID]
			mu.Unlock()
			if ok {
				lat = append(lat, max(at.Sub(acked), 0))
				break
			}
			<-seen
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCreate measures CreateToken on one store, one call at a time.
func BenchmarkCreate(b *testing.B) {
	endpoint, prefix := benchEtcd(b)
	s := openB(b, endpoint, prefix)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := s.CreateToken(ctx, token(fmt.Sprintf("created %d", i)), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEtcd returns the endpoint and a fresh prefix to benchmark on.
func benchEtcd(b *testing.B) (endpoint, prefix string) {
	prefix = fmt.Sprintf("/tokend-bench/%s/%d/", b.Name(), time.Now().UnixNano())
	if ep := os.Getenv("TOKEND_TEST_ETCD_ENDPOINT"); ep != "" {
		return ep, prefix
	}
	return etcdtest.Start(b).Endpoint(), prefix
}

func openB(b *testing.B, endpoint, prefix string) storage.Store {
	b.Helper()
	s, err := openStore(endpoint, prefix)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
