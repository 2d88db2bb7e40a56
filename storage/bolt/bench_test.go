package bolt_test

// Benchmarks of the bbolt store: the writes behind CreateToken, UpdateToken
// and RegenerateToken (each one transaction, fsynced, delivered to one
// subscriber as the service's index is), serial and concurrent; list pages;
// and the start-up replay of the change feed. They measure only:
//
//	go test ./storage/bolt -run '^$' -bench . -benchmem

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// benchBase is the create time of token 0; token i is created i ms later.
var benchBase = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// benchToken returns a read-only API token numbered i with a unique id, name
// and secret hash, and fields of realistic size.
func benchToken(i int) *storage.Token {
	id := "bench" + strconv.Itoa(i)
	created := benchBase.Add(time.Duration(i) * time.Millisecond)
	t := &storage.Token{
		ID:          id,
		Name:        "Bench token " + strconv.Itoa(i),
		Description: "synthetic token for the store benchmarks",
		Kind:        storage.KindAPI,
		Type:        storage.TypeReadOnly,
		CreateTime:  created,
		UpdateTime:  created,
		SecretHash:  sortedHash(uint64(i)),
		SecretHint:  "tkd_…" + strconv.Itoa(i%10000),
	}
	if i%2 == 0 {
		t.Lifespan = 30 * 24 * time.Hour
		t.ExpireTime = created.Add(t.Lifespan)
	}
	return t
}

// randomHash returns a distinct 32-byte hash for each n, random like a
// keyed hash.
func randomHash(n uint64) []byte {
	h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n))
	return h[:]
}

// sortedHash returns a distinct 32-byte hash for each n that grows with n.
// Preloads use it: bbolt keeps a transaction's inserts into one page in one
// growing node, so 10⁵ random keys in one transaction move O(n²) bytes,
// while keys in order append.
func sortedHash(n uint64) []byte {
	h := randomHash(n)
	binary.BigEndian.PutUint64(h, n)
	return h
}

// openBench opens a store in a temporary directory, preloaded with n tokens
// in one transaction, and subscribed to by one no-op subscriber, as the
// service always is.
func openBench(b *testing.B, n int) *bolt.Store {
	b.Helper()
	s, err := bolt.Open(filepath.Join(b.TempDir(), "tokend.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if n > 0 {
		tokens := make([]*storage.Token, n)
		for i := range tokens {
			tokens[i] = benchToken(i)
		}
		if _, err := s.Bootstrap(context.Background(), tokens, nil); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if err := s.Subscribe(ctx, func(storage.Change) {}); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkCreateToken(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		s := openBench(b, 0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.CreateToken(ctx, benchToken(i), nil); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := openBench(b, 0)
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.CreateToken(ctx, benchToken(int(next.Add(1))), nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchPreloaded is the number of tokens the update benchmarks spread their
// writes over.
const benchPreloaded = 1000

// BenchmarkUpdateToken measures an edit (new description) and a regeneration
// (new secret hash, so the hash index moves, and a new expiry).
func BenchmarkUpdateToken(b *testing.B) {
	ctx := context.Background()
	edit := func(i int) func(*storage.Token) error {
		return func(t *storage.Token) error {
			t.Description = "edited " + strconv.Itoa(i)
			t.UpdateTime = benchBase.Add(time.Duration(i) * time.Second)
			return nil
		}
	}
	regenerate := func(i int) func(*storage.Token) error {
		return func(t *storage.Token) error {
			t.SecretHash = randomHash(uint64(benchPreloaded + i))
			t.SecretHint = "tkd_…" + strconv.Itoa(i%10000)
			t.UpdateTime = benchBase.Add(time.Duration(i) * time.Second)
			if t.Lifespan > 0 {
				t.ExpireTime = t.UpdateTime.Add(t.Lifespan)
			}
			return nil
		}
	}
	for _, c := range []struct {
		name   string
		modify func(int) func(*storage.Token) error
	}{{"edit", edit}, {"regenerate", regenerate}} {
		b.Run(c.name+"/serial", func(b *testing.B) {
			s := openBench(b, benchPreloaded)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.UpdateToken(ctx, "bench"+strconv.Itoa(i%benchPreloaded), c.modify(i), nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			s := openBench(b, benchPreloaded)
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					if _, err := s.UpdateToken(ctx, "bench"+strconv.Itoa(i%benchPreloaded), c.modify(i), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchListed is the number of tokens in the store the list and replay
// benchmarks read.
const benchListed = 100_000

func BenchmarkListTokens(b *testing.B) {
	ctx := context.Background()
	s := openBench(b, benchListed)
	for _, c := range []struct {
		name string
		q    storage.ListQuery
	}{
		{"byName/limit=50", storage.ListQuery{Limit: 50}},
		{"byName/limit=1000", storage.ListQuery{Limit: 1000}},
		{"byCreateTimeDesc/limit=50", storage.ListQuery{Order: storage.OrderByCreateTimeDesc, Limit: 50}},
		// No admin token is stored: the filter reads every record to fill
		// an empty page, the worst case of a filtered listing.
		{"kindAdmin/limit=50", storage.ListQuery{Kind: storage.KindAdmin, Limit: 50}},
		{"expireBefore/limit=50", storage.ListQuery{ExpireBefore: benchBase.Add(31 * 24 * time.Hour), Limit: 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			first, err := s.ListTokens(ctx, c.q)
			if err != nil {
				b.Fatal(err)
			}
			// Every other call asks for the second page, through the
			// cursor, so seeking is measured too.
			second := c.q
			second.After = first.Next
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := c.q
				if i%2 == 1 {
					q = second
				}
				if _, err := s.ListTokens(ctx, q); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkSubscribeReplay measures what start-up does with a store of
// benchListed tokens: replay every stored token through the change feed.
func BenchmarkSubscribeReplay(b *testing.B) {
	s := openBench(b, benchListed)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		if err := s.Subscribe(ctx, func(storage.Change) { n++ }); err != nil {
			b.Fatal(err)
		}
		cancel()
		if n != benchListed {
			b.Fatalf("replayed %d tokens, want %d", n, benchListed)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchListed, "ns/token")
}
