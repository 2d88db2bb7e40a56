package etcd_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
	"github.com/tokend/tokend/storage/storagetest"
)

var base = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

func token(name string) *storage.Token {
	sum := sha256.Sum256([]byte("secret of " + name))
	return &storage.Token{
		ID: "id-" + name, Name: name, Kind: storage.KindAPI, Type: storage.TypeReadOnly,
		CreateTime: base, UpdateTime: base, SecretHash: sum[:],
	}
}

// feed records what a Subscribe delivers, as the latest version of each
// token (nil once deleted).
type feed struct {
	mu     sync.Mutex
	tokens map[string]*storage.Token
	resets int
	ch     chan struct{} // closed and replaced on every change
}

func subscribe(t *testing.T, s storage.Store) *feed {
	t.Helper()
	f := &feed{tokens: make(map[string]*storage.Token), ch: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Subscribe(ctx, f.apply); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return f
}

func (f *feed) apply(c storage.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Reset {
		f.resets++
		f.tokens = make(map[string]*storage.Token)
		for _, t := range c.Tokens {
			f.tokens[t.ID] = t
		}
	} else {
		f.tokens[c.ID] = c.Token
	}
	close(f.ch)
	f.ch = make(chan struct{})
}

// waitFor waits until ok holds for the fed tokens, failing t after 10 s.
func (f *feed) waitFor(t *testing.T, what string, ok func(map[string]*storage.Token) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		done, ch := ok(f.tokens), f.ch
		f.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the feed never showed %s", what)
		}
	}
}

// race runs fn(i) for i in [0, n) at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func TestTwoReplicas(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()

	t.Run("CreateSameName", func(t *testing.T) {
		a, b := open(t, srv, "/create/"), open(t, srv, "/create/")
		replicas := []storage.Store{a, b}
		for round := range 5 {
			errs := race(8, func(i int) error {
				tok := token(fmt.Sprintf("round %d racer %d", round, i))
				tok.Name = fmt.Sprintf("Shared %d", round)
				return replicas[i%2].CreateToken(ctx, tok, nil)
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, storage.ErrNameTaken):
					t.Fatalf("round %d racer %d: %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d creates of one name won, want 1", round, wins)
			}
		}
	})

	t.Run("OwnerRemovals", func(t *testing.T) {
		// Each replica takes away a different owner of the only two at
		// the same moment: one must be refused, on every round.
		storagetest.OwnerRemovalRace(t, open(t, srv, "/owners/"), open(t, srv, "/owners/"))
	})

	t.Run("CatalogBound", func(t *testing.T) {
		storagetest.CatalogRace(t, open(t, srv, "/catalog/"), open(t, srv, "/catalog/"))
	})

	t.Run("UpdatesRetryOnConflict", func(t *testing.T) {
		a, b := open(t, srv, "/update/"), open(t, srv, "/update/")
		tok := token("Counter")
		if err := a.CreateToken(ctx, tok, nil); err != nil {
			t.Fatal(err)
		}
		// Each update appends one mark to the description; a lost update
		// would lose its mark.
		const n = 16
		events := make([]*storage.AuditEvent, n)
		errs := race(n, func(i int) error {
			events[i] = &storage.AuditEvent{Time: base, Operation: storage.AuditUpdateToken, TargetID: tok.ID}
			_, err := []storage.Store{a, b}[i%2].UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
				t.Description += fmt.Sprintf("[%d]", i)
				return nil
			}, events[i])
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
		}
		got, err := b.GetToken(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !strings.Contains(got.Description, fmt.Sprintf("[%d]", i)) {
				t.Fatalf("update %d was lost: description %q", i, got.Description)
			}
		}
		page, err := a.ListAuditEvents(ctx, storage.AuditQuery{Limit: 100, TargetID: tok.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != n {
			t.Fatalf("%d audit events for %d updates", len(page.Events), n)
		}
	})

	t.Run("DeleteOnce", func(t *testing.T) {
		a, b := open(t, srv, "/delete/"), open(t, srv, "/delete/")
		for round := range 5 {
			tok := token(fmt.Sprintf("Doomed %d", round))
			if err := a.CreateToken(ctx, tok, nil); err != nil {
				t.Fatal(err)
			}
			errs := race(6, func(i int) error {
				ev := &storage.AuditEvent{Time: base, Operation: storage.AuditDeleteToken, TargetID: tok.ID}
				return []storage.Store{a, b}[i%2].DeleteToken(ctx, tok.ID, nil, ev)
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, storage.ErrNotFound):
					t.Fatalf("round %d delete %d: %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d deletes succeeded, want 1", round, wins)
			}
		}
	})

	t.Run("DeleteCheckSeesLatest", func(t *testing.T) {
		a, b := open(t, srv, "/deletecheck/"), open(t, srv, "/deletecheck/")
		tok := token("Guarded")
		if err := a.CreateToken(ctx, tok, nil); err != nil {
			t.Fatal(err)
		}
		// The check refuses admin tokens; b turns the token into one
		// while a's check runs, so a must check again and refuse.
		refused := errors.New("refused")
		calls := 0
		err := a.DeleteToken(ctx, tok.ID, func(cur *storage.Token) error {
			calls++
			if calls == 1 {
				if _, err := b.UpdateToken(ctx, tok.ID, func(t *storage.Token) error { t.Kind = storage.KindAdmin; return nil }, nil); err != nil {
					return err
				}
			}
			if cur.Kind == storage.KindAdmin {
				return refused
			}
			return nil
		}, nil)
		if err != refused {
			t.Fatalf("DeleteToken = %v after %d checks, want the check's refusal", err, calls)
		}
		if _, err := b.GetToken(ctx, tok.ID); err != nil {
			t.Fatalf("the token is gone: %v", err)
		}
	})

	t.Run("LastUsedMerges", func(t *testing.T) {
		a, b := open(t, srv, "/lastused/"), open(t, srv, "/lastused/")
		var ids []string
		for i := range 150 { // more than one transaction's worth
			tok := token(fmt.Sprintf("used %03d", i))
			if err := a.CreateToken(ctx, tok, nil); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tok.ID)
		}
		fa := subscribe(t, a)
		// Replica i%2 saw token j last at base + (i*7+j)%10 minutes; the
		// stored time must be the latest anyone saw.
		const flushes = 10
		errs := race(flushes, func(i int) error {
			used := make(map[string]time.Time)
			for j, id := range ids {
				used[id] = base.Add(time.Duration((i*7+j)%10) * time.Minute)
			}
			return []storage.Store{a, b}[i%2].TouchLastUsed(ctx, used)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("flush %d: %v", i, err)
			}
		}
		for j, id := range ids {
			want := base
			for i := range flushes {
				if at := base.Add(time.Duration((i*7+j)%10) * time.Minute); at.After(want) {
					want = at
				}
			}
			got, err := b.GetToken(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastUsedTime.Equal(want) {
				t.Fatalf("token %s: last used %v, want %v", id, got.LastUsedTime, want)
			}
		}
		// Flushes are not changes: a's feed still holds the tokens as
		// created (with no last use).
		marker := token("after flushes")
		if err := b.CreateToken(ctx, marker, nil); err != nil {
			t.Fatal(err)
		}
		fa.waitFor(t, "the marker", func(m map[string]*storage.Token) bool { return m[marker.ID] != nil })
		fa.mu.Lock()
		defer fa.mu.Unlock()
		for _, id := range ids {
			if lu := fa.tokens[id].LastUsedTime; !lu.IsZero() {
				t.Fatalf("a last-use flush reached the feed: %s last used %v", id, lu)
			}
		}
	})

	t.Run("BootstrapOnce", func(t *testing.T) {
		replicas := []storage.Store{open(t, srv, "/boot/"), open(t, srv, "/boot/"), open(t, srv, "/boot/")}
		dids := make([]bool, 3)
		errs := race(3, func(i int) error {
			// Each replica has its own random root token, as tokend does.
			root := token(fmt.Sprintf("root of replica %d", i))
			root.Name = "Root"
			var err error
			dids[i], err = replicas[i].Bootstrap(ctx, []*storage.Token{root}, nil)
			return err
		})
		won := 0
		for i := range 3 {
			if errs[i] != nil {
				t.Fatalf("replica %d: %v", i, errs[i])
			}
			if dids[i] {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("%d replicas bootstrapped, want 1", won)
		}
		page, err := replicas[0].ListTokens(ctx, storage.ListQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Tokens) != 1 {
			t.Fatalf("%d tokens after three bootstraps, want 1", len(page.Tokens))
		}
	})

	t.Run("FeedCrossesReplicas", func(t *testing.T) {
		a, b := open(t, srv, "/feed/"), open(t, srv, "/feed/")
		fb := subscribe(t, b)
		tok := token("Shared")
		if err := a.CreateToken(ctx, tok, nil); err != nil {
			t.Fatal(err)
		}
		fb.waitFor(t, "the created token", func(m map[string]*storage.Token) bool { return m[tok.ID] != nil })
		newHash := sha256.Sum256([]byte("regenerated"))
		if _, err := a.UpdateToken(ctx, tok.ID, func(t *storage.Token) error { t.SecretHash = newHash[:]; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		fb.waitFor(t, "the new hash", func(m map[string]*storage.Token) bool {
			return m[tok.ID] != nil && slices.Equal(m[tok.ID].SecretHash, newHash[:])
		})
		if err := a.DeleteToken(ctx, tok.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
		fb.waitFor(t, "the delete", func(m map[string]*storage.Token) bool {
			got, seen := m[tok.ID]
			return seen && got == nil
		})
	})

	t.Run("PrefixesApart", func(t *testing.T) {
		a, b := open(t, srv, "/one/"), open(t, srv, "/two/")
		if err := a.CreateToken(ctx, token("Same"), nil); err != nil {
			t.Fatal(err)
		}
		if err := b.CreateToken(ctx, token("Same"), nil); err != nil {
			t.Fatalf("the same token under another prefix: %v", err)
		}
	})
}

// TestClusterMemberDown: with three etcd members, stopping one changes
// nothing for a store given every endpoint: writes succeed, and its feed
// keeps delivering and stays confirmed.
func TestClusterMemberDown(t *testing.T) {
	members := etcdtest.StartCluster(t, 3)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.Endpoint())
	}
	open := func() *etcd.Store {
		s, err := etcd.Open(context.Background(), etcd.Config{
			Endpoints: endpoints, Prefix: "/cluster/", RequestTimeout: 5 * time.Second, ProgressInterval: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	fb := subscribe(t, b)
	members[0].Stop()
	stopped := time.Now()
	for i := range 5 {
		tok := token(fmt.Sprintf("after member stop %d", i))
		if err := a.CreateToken(ctx, tok, nil); err != nil {
			t.Fatalf("create %d with one member down: %v", i, err)
		}
		fb.waitFor(t, tok.ID, func(m map[string]*storage.Token) bool { return m[tok.ID] != nil })
	}
	for !b.FeedConfirmedAt().After(stopped) {
		if time.Since(stopped) > 20*time.Second {
			t.Fatalf("feed not confirmed since the member stopped (last %v)", b.FeedConfirmedAt())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping with one member down: %v", err)
	}
}
