package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
	"github.com/tokend/tokend/storage/storagetest"
)

// openStore opens a store on the etcd at endpoint under prefix.
func openStore(endpoint, prefix string) (*etcd.Store, error) {
	return etcd.Open(context.Background(), etcd.Config{
		Endpoints: []string{endpoint}, Prefix: prefix,
		RequestTimeout: 5 * time.Second, ProgressInterval: 20 * time.Millisecond,
	})
}

// open opens a store on srv under prefix, closed when t ends.
func open(t *testing.T, srv *etcdtest.Server, prefix string) *etcd.Store {
	t.Helper()
	s, err := openStore(srv.Endpoint(), prefix)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	// One etcd for the whole suite; each subtest gets a fresh prefix,
	// which is what keeps installations sharing an etcd apart.
	srv := etcdtest.Start(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Store {
		n++
		return open(t, srv, fmt.Sprintf("/conformance/%d/", n))
	})
}

// TestExternalEtcd runs the conformance suite, and checks that the change
// feed gets confirmed, against the etcd at $TOKEND_TEST_ETCD_ENDPOINT under
// fresh prefixes: how the store is checked against other etcd versions than
// the embedded one, e.g. Debian's etcd-server 3.4.
func TestExternalEtcd(t *testing.T) {
	endpoint := os.Getenv("TOKEND_TEST_ETCD_ENDPOINT")
	if endpoint == "" {
		t.Skip("SKIPPED: TOKEND_TEST_ETCD_ENDPOINT is not set, so the store was checked against the embedded etcd only")
	}
	run := time.Now().UnixNano()
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Store {
		n++
		s, err := openStore(endpoint, fmt.Sprintf("/tokend-test/%d/%d/", run, n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
	t.Run("FeedConfirmed", func(t *testing.T) {
		s, err := openStore(endpoint, fmt.Sprintf("/tokend-test/%d/feed/", run))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.Subscribe(ctx, func(storage.Change) {}); err != nil {
			t.Fatal(err)
		}
		// A quiet feed is confirmed by answered progress requests.
		since := time.Now()
		for !s.FeedConfirmedAt().After(since) {
			if time.Since(since) > 10*time.Second {
				t.Fatal("a quiet feed was never confirmed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestKeyChecks(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "/keys/"), open(t, srv, "/keys/")
	ctx := context.Background()
	if got, err := a.KeyChecks(ctx); err != nil || len(got) != 0 {
		t.Fatalf("KeyChecks of a fresh prefix = %v, %v; want none", got, err)
	}
	first := storage.KeyCheck{KeyID: "k1", Check: []byte{1, 2, 3}}
	second := storage.KeyCheck{KeyID: "k0", Check: []byte{4, 5, 6}} // sorts before k1: order is recording order
	for _, step := range []struct {
		name  string
		store storage.Store
		c     storage.KeyCheck
		want  error
	}{
		{"Record", a, first, nil},
		{"SameAgainOtherReplica", b, first, nil},
		{"Second", b, second, nil},
		{"Mismatch", a, storage.KeyCheck{KeyID: "k1", Check: []byte{9}}, storage.ErrKeyCheckMismatch},
	} {
		if err := step.store.RecordKeyCheck(ctx, step.c); !errors.Is(err, step.want) {
			t.Fatalf("%s: RecordKeyCheck = %v, want %v", step.name, err, step.want)
		}
	}
	got, err := b.KeyChecks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].KeyID != "k1" || string(got[0].Check) != "\x01\x02\x03" || got[1].KeyID != "k0" {
		t.Fatalf("KeyChecks = %+v, want k1 then k0 as recorded", got)
	}
}
