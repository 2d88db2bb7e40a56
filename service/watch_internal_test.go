package service

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
)

// BenchmarkWatchReplay is what the watch adds per token to the replay of
// the stored tokens at start (the feed's subscriber with the hub dormant,
// against the index alone, in the same run), and what the first watch then
// pays once to activate the hub (the state digest and the deadlines of
// every token, read off the index).
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
	perToken := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
	}
	b.Run("Index", func(b *testing.B) {
		for b.Loop() {
			ix := newIndex()
			for _, t := range tokens {
				ix.apply(storage.Change{ID: t.ID, Token: t})
			}
		}
		perToken(b)
	})
	b.Run("IndexAndWatch", func(b *testing.B) {
		for b.Loop() {
			s := newTestService()
			for _, t := range tokens {
				s.applyChange(storage.Change{ID: t.ID, Token: t})
			}
		}
		perToken(b)
	})
	b.Run("Activate", func(b *testing.B) {
		s := newTestService()
		for _, t := range tokens {
			s.applyChange(storage.Change{ID: t.ID, Token: t})
		}
		for b.Loop() {
			s.watch.active.Store(false)
			s.activateWatch()
		}
		perToken(b)
	})
}

// newTestService returns a Service with an empty index and a dormant watch
// hub on the real clock, for the tests of what the change feed does.
func newTestService() *Service {
	s := &Service{index: newIndex()}
	s.watch = newWatchHub(time.Now, DefaultExpiryWarnings, 0, 0, s.index.byTokenID)
	return s
}

// apiToken returns an API token whose secret hash is derived from id and
// seed.
func apiToken(id string, seed byte, expire time.Time) *storage.Token {
	sum := sha256.Sum256(append([]byte(id), seed))
	now := time.Now()
	return &storage.Token{ID: id, Name: "token " + id, Kind: storage.KindAPI, Type: storage.TypeReadOnly,
		SecretHash: sum[:], ExpireTime: expire, CreateTime: now, UpdateTime: now}
}

// watchState returns the hub's state digest and how many deadlines it
// holds.
func watchState(s *Service) (state uint64, deadlines int) {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	return s.watch.state, len(s.watch.deadlines)
}

// TestWatchDormantUntilFirstWatch: the replay of stored tokens leaves the
// hub without per-token state; activation reads the digest and the
// deadlines off the index, the same as if it had followed every change.
func TestWatchDormantUntilFirstWatch(t *testing.T) {
	expire := time.Now().Add(30 * 24 * time.Hour)
	s := newTestService()
	for i := range 100 {
		var exp time.Time
		if i%2 == 0 {
			exp = expire
		}
		tok := apiToken(fmt.Sprint("t", i), 0, exp)
		s.applyChange(storage.Change{ID: tok.ID, Token: tok})
	}
	if s.watch.active.Load() {
		t.Fatal("the hub is active before any watch")
	}
	if state, n := watchState(s); state != 0 || n != 0 {
		t.Fatalf("dormant hub holds state %x and %d deadlines, want none", state, n)
	}
	s.activateWatch()
	state, n := watchState(s)
	if n != 50 {
		t.Errorf("%d deadlines after activation, want 50 (the expiring tokens)", n)
	}
	var want uint64
	for _, e := range s.index.entries() {
		want ^= e.digest
	}
	if state != want {
		t.Errorf("state %x after activation, want %x (the digest of the indexed tokens)", state, want)
	}
}

// TestWatchActivationDuringChanges: changes that arrive while the first
// watch activates the hub are each counted once: the state afterwards is
// that of the final tokens, whichever side of the activation each change
// fell on. Run it with -race.
func TestWatchActivationDuringChanges(t *testing.T) {
	for round := range 20 {
		s := newTestService()
		expire := time.Now().Add(30 * 24 * time.Hour)
		for i := range 200 {
			tok := apiToken(fmt.Sprint("t", i), 0, expire)
			s.applyChange(storage.Change{ID: tok.ID, Token: tok})
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 200 {
				id := fmt.Sprint("t", i)
				switch i % 3 {
				case 0:
					s.applyChange(storage.Change{ID: id}) // deleted
				case 1:
					tok := apiToken(id, 1, expire) // regenerated
					s.applyChange(storage.Change{ID: id, Token: tok})
				default:
					tok := apiToken(fmt.Sprint("n", i), 0, time.Time{}) // created
					s.applyChange(storage.Change{ID: tok.ID, Token: tok})
				}
			}
		}()
		s.activateWatch()
		<-done
		state, _ := watchState(s)
		var want uint64
		for _, e := range s.index.entries() {
			want ^= e.digest
		}
		if state != want {
			t.Fatalf("round %d: state %x, want %x: a change during activation was lost or counted twice", round, state, want)
		}
	}
}

// TestWatchStaleDeadlinesSwept: a token changed again and again leaves one
// deadline per version in the heap; they are swept before they outnumber
// the current ones, so the heap stays in proportion to the tokens.
func TestWatchStaleDeadlinesSwept(t *testing.T) {
	s := newTestService()
	s.activateWatch()
	expire := time.Now().Add(30 * 24 * time.Hour)
	const changes = 10 * minStaleSweep
	for i := range changes {
		tok := apiToken("churn", byte(i), expire.Add(time.Duration(i)*time.Second))
		s.applyChange(storage.Change{ID: tok.ID, Token: tok})
	}
	if _, n := watchState(s); n > minStaleSweep+2 {
		t.Errorf("%d deadlines for one token changed %d times, want at most %d", n, changes, minStaleSweep+2)
	}
	s.watch.mu.Lock()
	s.watch.sweepDeadlines()
	n := len(s.watch.deadlines)
	s.watch.mu.Unlock()
	if n != 1 {
		t.Errorf("%d deadlines after a sweep, want 1 (the current version's)", n)
	}
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
	s.activateWatch() // a first watch

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
	fresh.activateWatch()
	if state != fresh.watch.state {
		t.Error("after a reset the watch state differs from that of the same tokens applied one by one")
	}
}

// TestDigestCoversWhatVerifiersCache: a change to anything a verifier's
// cached answer shows or decides changes the token's digest; the same
// record gives the same digest.
func TestDigestCoversWhatVerifiersCache(t *testing.T) {
	expire := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	base := func() *storage.Token {
		tok := apiToken("tok", 0, expire)
		tok.Lifespan = 30 * 24 * time.Hour
		tok.Type = storage.TypeCustom
		tok.Permissions = []string{"a.read", "b.write"}
		return tok
	}
	digest := func(tok *storage.Token) uint64 { return newEntry(tok, nil).digest }
	if digest(base()) != digest(base()) {
		t.Fatal("the same record gives two digests")
	}
	for name, change := range map[string]func(*storage.Token){
		"Secret":      func(tok *storage.Token) { tok.SecretHash = apiToken("tok", 1, expire).SecretHash },
		"Type":        func(tok *storage.Token) { tok.Type, tok.Permissions = storage.TypeReadOnly, nil },
		"Expiry":      func(tok *storage.Token) { tok.ExpireTime = expire.Add(time.Second) },
		"Lifespan":    func(tok *storage.Token) { tok.Lifespan = 7 * 24 * time.Hour },
		"Name":        func(tok *storage.Token) { tok.Name = "other" },
		"Permissions": func(tok *storage.Token) { tok.Permissions = []string{"a.read"} },
		"Joined":      func(tok *storage.Token) { tok.Permissions = []string{"a.readb.write", ""} },
		"Rotation": func(tok *storage.Token) {
			tok.PreviousSecretHash = apiToken("tok", 2, expire).SecretHash
			tok.PreviousExpireTime = expire.Add(-time.Hour)
		},
	} {
		tok := base()
		change(tok)
		if digest(tok) == digest(base()) {
			t.Errorf("%s: the digest did not change", name)
		}
	}
}
