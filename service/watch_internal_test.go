package service

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
)

// BenchmarkWatchReplay is what following the change feed costs the watch
// per token while the stored tokens are replayed at start: the state digest
// and the expiry schedule. Compare with the index's own cost per token,
// measured in the same run.
func BenchmarkWatchReplay(b *testing.B) {
	const n = 100_000
	now := time.Now()
	tokens := make([]*storage.Token, n)
	for i := range tokens {
		tokens[i] = &storage.Token{
			ID: fmt.Sprintf("%026d", i), Name: fmt.Sprint("token ", i), Kind: storage.KindAPI, Type: storage.TypeReadOnly,
			SecretHash: make([]byte, hashLen), ExpireTime: now.Add(30 * 24 * time.Hour), Lifespan: 30 * 24 * time.Hour,
			CreateTime: now, UpdateTime: now,
		}
		sum := sha256.Sum256([]byte(tokens[i].ID))
		copy(tokens[i].SecretHash, sum[:])
	}
	b.Run("Index", func(b *testing.B) {
		for b.Loop() {
			ix := newIndex()
			for _, t := range tokens {
				ix.apply(storage.Change{ID: t.ID, Token: t})
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
	})
	b.Run("IndexAndWatch", func(b *testing.B) {
		for b.Loop() {
			ix := newIndex()
			h := newWatchHub(time.Now, DefaultExpiryWarnings, 0, 0, ix.byTokenID)
			for _, t := range tokens {
				before := ix.byTokenID(t.ID)
				ix.apply(storage.Change{ID: t.ID, Token: t})
				h.observe(t.ID, before, ix.byTokenID(t.ID))
			}
			h.goLive()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
	})
}
