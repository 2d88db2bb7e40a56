package etcd

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

func openStore(t *testing.T, srv *etcdtest.Server, timeout time.Duration) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{
		Endpoints: []string{srv.Endpoint()}, Prefix: "/feed/",
		RequestTimeout: timeout, ProgressInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testToken(name string) *storage.Token {
	sum := sha256.Sum256([]byte(name))
	return &storage.Token{ID: name, Name: name, Kind: storage.KindAPI, Type: storage.TypeReadOnly, SecretHash: sum[:]}
}

// recorder keeps the changes a feed delivers.
type recorder struct {
	mu      sync.Mutex
	changes []storage.Change
	ch      chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{})} }

func (r *recorder) apply(c storage.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
	close(r.ch)
	r.ch = make(chan struct{})
}

// wait waits until ok holds for the changes, failing t after 10 s.
func (r *recorder) wait(t *testing.T, what string, ok func([]storage.Change) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		done, ch := ok(r.changes), r.ch
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the feed never delivered %s", what)
		}
	}
}

// TestFeedReloadsAfterCompaction starts a feed from a revision etcd has
// compacted away, as a replica that was cut off while the cluster
// compacted finds itself: the feed must deliver one Reset with the tokens
// as they are, then follow new changes.
func TestFeedReloadsAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	s := openStore(t, srv, 5*time.Second)
	ctx := context.Background()
	kept, gone := testToken("kept"), testToken("gone")
	for _, tok := range []*storage.Token{kept, gone} {
		if err := s.CreateToken(ctx, tok, nil); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	_, rev, err := s.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Missed changes: a create and a delete, then the history goes.
	added := testToken("added")
	if err := s.CreateToken(ctx, added, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx, gone.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	srv.Compact()

	r := newRecorder()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.follow(fctx, r.apply, rev, start); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "a reset", func(cs []storage.Change) bool { return len(cs) > 0 })
	r.mu.Lock()
	first := r.changes[0]
	r.mu.Unlock()
	if !first.Reset {
		t.Fatalf("first change after compaction = %+v, want a Reset", first)
	}
	var ids []string
	for _, tok := range first.Tokens {
		ids = append(ids, tok.ID)
	}
	if len(ids) != 2 || ids[0] != added.ID || ids[1] != kept.ID {
		t.Fatalf("reset holds %q, want [added kept]", ids)
	}
	// And it follows on from the reload.
	late := testToken("late")
	if err := s.CreateToken(ctx, late, nil); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "the change after the reset", func(cs []storage.Change) bool {
		return cs[len(cs)-1].ID == late.ID && cs[len(cs)-1].Token != nil
	})
}

// TestOutage stops etcd under a subscribed store: writes and Ping fail
// with ErrUnavailable, the feed's confirmation time stops, and once etcd is
// back the feed resumes where it stopped and is confirmed again.
func TestOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	s := openStore(t, srv, 300*time.Millisecond)
	other := openStore(t, srv, 5*time.Second)
	ctx := context.Background()
	r := newRecorder()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.Subscribe(fctx, r.apply); err != nil {
		t.Fatal(err)
	}
	// Healthy: confirmations keep coming.
	healthy := time.Now()
	waitConfirmedAfter(t, s, healthy)

	srv.Stop()
	if err := s.CreateToken(ctx, testToken("during outage"), nil); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("CreateToken during the outage = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Ping during the outage = %v, want ErrUnavailable", err)
	}
	stopped := time.Now()
	// A request that etcd cannot answer takes the request timeout, so by
	// now a healthy feed would have been confirmed many times over.
	if _, err := s.GetToken(ctx, "x"); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("GetToken during the outage = %v, want ErrUnavailable", err)
	}
	if c := s.FeedConfirmedAt(); c.After(stopped) {
		t.Fatalf("feed confirmed at %v, after etcd stopped at %v", c, stopped)
	}

	srv.Restart()
	restarted := time.Now()
	if err := other.CreateToken(ctx, testToken("after outage"), nil); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "the write made after the outage", func(cs []storage.Change) bool {
		for _, c := range cs {
			if c.ID == "after outage" && c.Token != nil {
				return true
			}
		}
		return false
	})
	waitConfirmedAfter(t, s, restarted)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the outage: %v", err)
	}
	for _, c := range r.changes {
		if c.ID == "during outage" {
			t.Fatal("the write refused during the outage was delivered")
		}
	}
}

// waitConfirmedAfter waits until the store's feed is confirmed after t0.
func waitConfirmedAfter(t *testing.T, s *Store, t0 time.Time) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !s.FeedConfirmedAt().After(t0) {
		if time.Now().After(deadline) {
			t.Fatalf("feed not confirmed after %v (last %v)", t0, s.FeedConfirmedAt())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenRefuses(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	t.Run("NewerSchema", func(t *testing.T) {
		s := openStore(t, srv, time.Second)
		if _, err := s.cli.Put(ctx, s.key(keySchemaVersion), "99"); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, Config{Endpoints: []string{srv.Endpoint()}, Prefix: "/feed/"})
		if err == nil || !strings.Contains(err.Error(), "newer tokend") {
			t.Fatalf("Open on a prefix of schema version 99 = %v, want a refusal naming a newer tokend", err)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		other := etcdtest.Start(t)
		endpoint := other.Endpoint()
		other.Stop()
		_, err := Open(ctx, Config{Endpoints: []string{endpoint}, DialTimeout: 200 * time.Millisecond, RequestTimeout: 200 * time.Millisecond})
		if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), endpoint) {
			t.Fatalf("Open on a stopped etcd = %v, want ErrUnavailable naming %s", err, endpoint)
		}
	})
}

// TestEmptyBootstrapDoesNotWait: a bootstrap without tokens changes no
// token, so it must not wait for the feed to deliver one.
func TestEmptyBootstrapDoesNotWait(t *testing.T) {
	srv := etcdtest.Start(t)
	s := openStore(t, srv, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Subscribe(ctx, func(storage.Change) {}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Bootstrap(ctx, nil, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // half the request timeout
		t.Fatal("an empty bootstrap waited for the change feed")
	}
}
