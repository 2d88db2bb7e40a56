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
// It stores $TOKEND_BENCH_TOKENS tokens (default 10^5) first (see
// seedBench). With -short it stores 10^3.
func BenchmarkSubscribe(b *testing.B) {
	s, n := seedBench(b, "subscribe")
	ctx := context.Background()
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

// BenchmarkListPages measures a page of 100 tokens of ListTokens, in each
// order, among $TOKEND_BENCH_TOKENS tokens (see seedBench): each iteration
// reads the next page, from the first to the last and round again, so the
// figure is the mean over the whole listing.
func BenchmarkListPages(b *testing.B) {
	s, _ := seedBench(b, "list")
	ctx := context.Background()
	for _, order := range []struct {
		name  string
		order storage.Order
	}{{"ByName", storage.OrderByName}, {"ByCreateTimeDesc", storage.OrderByCreateTimeDesc}} {
		b.Run(order.name, func(b *testing.B) {
			q := storage.ListQuery{Order: order.order, Limit: 100}
			for range b.N {
				page, err := s.ListTokens(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Tokens) == 0 {
					b.Fatal("empty page")
				}
				q.After = page.Next
			}
		})
	}
}

// seedBench opens a store under a fresh prefix on an embedded etcd, or on
// the one at $TOKEND_TEST_ETCD_ENDPOINT, and stores $TOKEND_BENCH_TOKENS
// tokens (default 10^5, 10^3 with -short) in it, in batches written straight
// to etcd. It returns the store and the number of tokens.
func seedBench(b *testing.B, name string) (*Store, int) {
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
	s, err := Open(ctx, Config{Endpoints: []string{endpoint}, Prefix: fmt.Sprintf("/tokend-bench/%s/%d/", name, time.Now().UnixNano())})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	begin := time.Now()
	for i := 0; i < n; i += importBatch {
		var puts []clientv3.Op
		for j := i; j < min(i+importBatch, n); j++ {
			t := testToken(fmt.Sprintf("token %07d", j))
			t.Description, t.SecretHint = "a token of the start-up benchmark", "tkd_ab…wxyz"
			t.CreateTime = begin.Add(time.Duration(j) * time.Millisecond)
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
	return s, n
}
