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
				before, after := ix.apply(storage.Change{ID: t.ID, Token: t})
				h.observe(t.ID, before, after)
			}
			h.goLive()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
	})
}

// TestResetReachesWatchers: when the store replaces the whole index (an etcd
// watch compacted past the changes it missed), watchers are told what changed
// for each token, as if the changes had come one by one, and the state the
// resume tokens carry is that of the new index.
func TestResetReachesWatchers(t *testing.T) {
	now := time.Now()
	token := func(id string, hashSeed byte, typ storage.Type) *storage.Token {
		h := make([]byte, hashLen)
		h[0], h[1] = hashSeed, id[0]
		return &storage.Token{ID: id, Name: "token " + id, Kind: storage.KindAPI, Type: typ,
			SecretHash: h, CreateTime: now, UpdateTime: now}
	}
	s := &Service{index: newIndex()}
	s.watch = newWatchHub(time.Now, nil, 0, 0, s.index.byTokenID)
	for _, tok := range []*storage.Token{token("a", 1, storage.TypeReadOnly), token("b", 1, storage.TypeReadOnly),
		token("c", 1, storage.TypeReadOnly), token("d", 1, storage.TypeReadOnly)} {
		s.applyChange(storage.Change{ID: tok.ID, Token: tok})
	}
	s.watch.goLive()

	// While the feed was away: a deleted, b regenerated, c retyped, d
	// untouched, e created.
	s.applyChange(storage.Change{Reset: true, Tokens: []*storage.Token{
		token("b", 2, storage.TypeReadOnly), token("c", 1, storage.TypeFullAccess),
		token("d", 1, storage.TypeReadOnly), token("e", 1, storage.TypeReadOnly)}})

	s.watch.mu.Lock()
	events, lost := s.watch.read(1, make([]watchEvent, 0, 16))
	state := s.watch.state
	s.watch.mu.Unlock()
	if lost {
		t.Fatal("events lost")
	}
	got := map[string]string{}
	for _, ev := range events {
		got[ev.id] = ev.typ.String()
	}
	want := map[string]string{
		"a": "TOKEN_EVENT_TYPE_DELETED",
		"b": "TOKEN_EVENT_TYPE_SECRET_CHANGED",
		"c": "TOKEN_EVENT_TYPE_CHANGED",
	}
	if len(got) != len(want) {
		t.Errorf("events %v, want %v", got, want)
	}
	for id, typ := range want {
		if got[id] != typ {
			t.Errorf("token %s: event %q, want %q", id, got[id], typ)
		}
	}

	// The digest equals that of a hub that saw only the new tokens.
	fresh := &Service{index: newIndex()}
	fresh.watch = newWatchHub(time.Now, nil, 0, 0, fresh.index.byTokenID)
	for _, id := range []string{"b", "c", "d", "e"} {
		e := s.index.byTokenID(id)
		if e == nil {
			t.Fatalf("token %s missing after the reset", id)
		}
	}
	fresh.applyChange(storage.Change{ID: "b", Token: token("b", 2, storage.TypeReadOnly)})
	fresh.applyChange(storage.Change{ID: "c", Token: token("c", 1, storage.TypeFullAccess)})
	fresh.applyChange(storage.Change{ID: "d", Token: token("d", 1, storage.TypeReadOnly)})
	fresh.applyChange(storage.Change{ID: "e", Token: token("e", 1, storage.TypeReadOnly)})
	if state != fresh.watch.state {
		t.Error("after a reset the watch state differs from that of the same tokens applied one by one")
	}
}
