package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

// TestReadsAcrossFences lists and snapshots enough tokens that the ranges
// between fences (see dirFences) and the snapshot's split ranges come into
// play, with fences missing and left over as after an interrupted upgrade:
// every page, in both orders, under filters, and the snapshot must hold
// exactly the stored tokens in order.
func TestReadsAcrossFences(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	s := openStore(t, srv, 5*time.Second)
	const n = 700
	base := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	var (
		byName, byCreated []string
		puts              []clientv3.Op
	)
	for i := range n {
		tok := testToken(fmt.Sprintf("token %04d", i))
		// Ids of different lengths and a shared start, so that the
		// snapshot splits more than once and meets an id that is the
		// start of others.
		tok.ID = strings.Repeat("x", i%3) + fmt.Sprintf("%d", i)
		tok.CreateTime = base.Add(time.Duration(i%250) * time.Second)
		if i%2 == 1 {
			tok.Type = storage.TypeFullAccess
		}
		in, err := s.insertOps(tok)
		if err != nil {
			t.Fatal(err)
		}
		puts = append(puts, in.puts...)
		byName = append(byName, tok.ID)
	}
	// Written straight to etcd, in as few transactions as fit.
	for chunk := range slices.Chunk(puts, maxTxnOps) {
		if _, err := s.txn(ctx, "seed", nil, chunk, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.CountTokens(ctx); err != nil || got != n {
		t.Fatalf("CountTokens = %d, %v; want %d", got, err, n)
	}
	want := slices.Clone(byName)
	slices.Sort(want)
	var all []*storage.Token
	for _, batch := range []int64{snapshotBatch, 50, 3} {
		var (
			got []*storage.Token
			rev int64
		)
		if err := s.snapshotUnder(ctx, s.key(dirTokens), batch, &rev, &got); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tok := range got {
			ids = append(ids, tok.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("snapshot read %d at a time holds %d tokens, not the %d stored in id order", batch, len(ids), len(want))
		}
		all = got
	}
	tokens := make(map[string]*storage.Token, len(all))
	for _, tok := range all {
		tokens[tok.ID] = tok
	}
	byCreated = slices.Clone(byName)
	slices.SortStableFunc(byCreated, func(a, b string) int {
		ka, kb := createdKey(tokens[a].CreateTime, a), createdKey(tokens[b].CreateTime, b)
		return strings.Compare(ka, kb)
	})

	fences, err := s.cli.Get(ctx, s.key(dirFences), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if fences.Count < 10 {
		t.Fatalf("%d fences for %d tokens in two indexes: too few to test the reads between them", fences.Count, n)
	}

	check := func(t *testing.T) {
		t.Helper()
		for _, c := range []struct {
			name  string
			q     storage.ListQuery
			order []string
		}{
			{"ByName", storage.ListQuery{Order: storage.OrderByName}, byName},
			{"ByCreated", storage.ListQuery{Order: storage.OrderByCreateTimeDesc}, byCreated},
			{"ByNameFiltered", storage.ListQuery{Order: storage.OrderByName, Type: storage.TypeFullAccess}, byName},
		} {
			var want []string
			for _, id := range c.order {
				if c.q.Matches(tokens[id]) {
					want = append(want, id)
				}
			}
			for _, limit := range []int{13, 100, 1000} {
				q := c.q
				q.Limit = limit
				var got []string
				for {
					page, err := s.ListTokens(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					for _, tok := range page.Tokens {
						got = append(got, tok.ID)
					}
					if page.Next == "" {
						break
					}
					q.After = page.Next
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s, pages of %d: listed %d tokens, want %d in order", c.name, limit, len(got), len(want))
				}
			}
		}
	}
	t.Run("Fenced", check)
	t.Run("StrayAndMissingFences", func(t *testing.T) {
		// Remove every other fence and add fences for keys that are
		// not in the index, before, between and after the real ones.
		resp, err := s.cli.Get(ctx, s.key(dirFences), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		for i, kv := range resp.Kvs {
			if i%2 == 0 {
				if _, err := s.cli.Delete(ctx, string(kv.Key)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, dir := range []string{dirNames, dirCreated} {
			for _, k := range []string{"", "\x00", "0", "token 0100 ", "token 0350x", "ffff", "zzzz", "\xff\xff"} {
				if _, err := s.cli.Put(ctx, s.key(dirFences+dir+k), ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		check(t)
	})
}
