package etcd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

// BenchmarkSubscribe measures what a replica's start-up costs on the store
// side: reading every token at one revision and handing each to the feed.
// It stores $TOKEND_BENCH_TOKENS tokens (default 10^5) first, in batches
// written straight to etcd, on an embedded etcd or the one at
// $TOKEND_TEST_ETCD_ENDPOINT. With -short it stores 10^3.
func BenchmarkSubscribe(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 1000
	}
	if v, err := strconv.Atoi(os.Getenv("TOKEND_BENCH_TOKENS")); err == nil && v > 0 {
		n = v
	}
	endpoint := os.Getenv("TOKEND_TEST_ETCD_ENDPOINT")
	if endpoint == "" {
		endpoint = etcdtest.Start(b).Endpoint()
	}
	ctx := context.Background()
	s, err := Open(ctx, Config{Endpoints: []string{endpoint}, Prefix: fmt.Sprintf("/tokend-bench/subscribe/%d/", time.Now().UnixNano())})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	begin := time.Now()
	for i := 0; i < n; i += importBatch {
		var puts []clientv3.Op
		for j := i; j < min(i+importBatch, n); j++ {
			t := testToken(fmt.Sprintf("token %07d", j))
			t.Description, t.SecretHint, t.CreateTime = "a token of the start-up benchmark", "tkd_ab…wxyz", begin
			in, err := s.insertOps(t)
			if err != nil {
				b.Fatal(err)
			}
			puts = append(puts, in.puts...)
		}
		if _, err := s.txn(ctx, "seed", nil, puts, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d tokens in %v", n, time.Since(begin).Round(time.Millisecond))
	b.ResetTimer()
	for range b.N {
		fctx, cancel := context.WithCancel(ctx)
		count := 0
		if err := s.Subscribe(fctx, func(storage.Change) { count++ }); err != nil {
			b.Fatal(err)
		}
		cancel()
		if count != n {
			b.Fatalf("replayed %d tokens, want %d", count, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/token")
}
