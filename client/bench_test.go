package client_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// The benchmarks run against a real tokend on loopback, in this process.
// Reproduce every figure with:
//
//	go test ./client -run '^$' -bench . -benchtime 1x   (revocation and watch)
//	go test ./client -run '^$' -bench 'Verify|Introspect' (the rest)

func BenchmarkVerifyCached(b *testing.B) {
	td := startTokend(b)
	_, secret := td.apiToken(&tokendv1.Token{Name: "hot", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM,
		Permissions: []string{"api::article.article.find"}})
	v := td.verifier(client.WithMaxAge(time.Hour))
	mustVerify(b, v, secret)
	ctx := context.Background()
	// The floor of any cache with expiry, measured in the same run: a
	// read-locked map lookup of the secret and a clock reading.
	b.Run("Baseline", func(b *testing.B) {
		var mu sync.RWMutex
		m := map[string]int64{secret: time.Now().Add(time.Hour).UnixNano()}
		b.ReportAllocs()
		for b.Loop() {
			mu.RLock()
			until := m[secret]
			mu.RUnlock()
			if time.Now().UnixNano() >= until {
				b.Fatal("expired")
			}
		}
	})
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := v.Verify(ctx, secret, "api::article.article.find"); err != nil || !r.Allowed {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r, err := v.Verify(ctx, secret, "api::article.article.find"); err != nil || !r.Allowed {
					b.Fatal(r, err)
				}
			}
		})
	})
}

// BenchmarkVerifyUncached compares a Verify that must ask tokend (its
// answers expire at once) with the bare Introspect call it makes, same
// server, same connection.
func BenchmarkVerifyUncached(b *testing.B) {
	td := startTokend(b)
	_, secret := td.apiToken(&tokendv1.Token{Name: "cold"})
	v := td.verifier(client.WithMaxAge(time.Nanosecond))
	ctx := context.Background()
	b.Run("Introspect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := td.admin.Introspect(ctx, secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := v.Verify(ctx, secret); err != nil || !r.Active {
				b.Fatal(r, err)
			}
		}
	})
}

// BenchmarkRevocation measures, with n answers cached, the time from an
// acknowledged DeleteToken to the verifier refusing the token's secret.
// The cache holds 1,000 real tokens plus "not found" answers for the rest
// (creating 10^5 tokens through the API takes minutes here; an eviction
// looks a token up by id whatever the cache holds).
func BenchmarkRevocation(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("cached=%d", n), func(b *testing.B) {
			if n > 1_000 && testing.Short() {
				b.Skip("a minute of filling the cache: not with -short")
			}
			for b.Loop() {
				p50, p99 := revocationLatency(b, n)
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			}
		})
	}
}

func revocationLatency(b *testing.B, cached int) (p50, p99 time.Duration) {
	const tokens = 1_000
	td := startTokend(b)
	v := td.verifier(client.WithMaxAge(time.Hour), client.WithNegativeAge(time.Hour), client.WithMaxEntries(cached+1))
	ctx := context.Background()
	ids, secrets := make([]string, tokens), make([]string, tokens)
	parallel(b, tokens, func(i int) {
		resp, err := td.admin.API().CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: fmt.Sprint("t", i)}})
		if err != nil {
			b.Fatal(err)
		}
		ids[i], secrets[i] = resp.GetToken().GetId(), resp.GetSecret()
		mustVerify(b, v, secrets[i])
	})
	// Fill the rest of the cache with "not found" answers.
	parallel(b, cached-tokens, func(i int) {
		if r := mustVerify(b, v, unknownSecret(i)); r.Active {
			b.Fatal("unknown secret active")
		}
	})
	waitFor(b, "the watch to be up", v.Healthy)
	var lat []time.Duration
	for i := range tokens {
		if !mustVerify(b, v, secrets[i]).Active {
			b.Fatal("token not cached")
		}
		if _, err := td.admin.API().DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: ids[i]}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for mustVerify(b, v, secrets[i]).Active {
			runtime.Gosched()
		}
		lat = append(lat, time.Since(acked))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// unknownSecret is a well-formed API secret no token has.
func unknownSecret(i int) string {
	body := fmt.Sprintf("%043d", i)
	return "tkd_" + body + checksum("tkd_"+body)
}

// checksum is the 6 base62 digits of the CRC-32 (IEEE) of s.
func checksum(s string) string {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sum := crc32.ChecksumIEEE([]byte(s))
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = base62[sum%62]
		sum /= 62
	}
	return string(d[:])
}

// parallel runs f(0..n-1) on 8 workers.
func parallel(b *testing.B, n int, f func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkWatchCost compares token updates on a server with no watcher and
// with 100 (each update is an event sent to every watcher), and reports
// the memory each open watch costs the process (server and client side).
func BenchmarkWatchCost(b *testing.B) {
	for _, watchers := range []int{0, 100} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			td := startTokend(b)
			tok, _ := td.apiToken(&tokendv1.Token{Name: "churn"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			received := make([]atomic.Int64, watchers)
			var ready sync.WaitGroup
			ready.Add(watchers)
			for w := range watchers {
				stream, err := td.admin.Watch(ctx, "")
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					first := true
					for {
						ev, err := stream.Recv()
						if first {
							ready.Done()
							first = false
						}
						if err != nil {
							return
						}
						if ev.GetType() == tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED {
							received[w].Add(1)
						}
					}
				}()
			}
			ready.Wait()
			var after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&after)
			i := 0
			for b.Loop() {
				i++
				if _, err := td.admin.API().UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
					Token: &tokendv1.Token{Id: tok.GetId(), Name: fmt.Sprint("churn ", i)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for w := range watchers {
				waitFor(b, "every watcher to get every event", func() bool { return received[w].Load() >= int64(i) })
			}
			if watchers > 0 {
				// Reported after the loop: b.Loop resets reported metrics.
				b.ReportMetric((float64(after.HeapInuse)-float64(before.HeapInuse))/float64(watchers), "heap-B/watcher")
			}
		})
	}
}
