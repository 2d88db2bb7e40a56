package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tokend/tokend/storage"
)

func wantKeyChecks(t *testing.T, s storage.Store, want ...storage.KeyCheck) {
	t.Helper()
	got, err := s.KeyChecks(context.Background())
	if err != nil {
		t.Fatalf("KeyChecks: %v", err)
	}
	if !slices.EqualFunc(got, want, func(a, b storage.KeyCheck) bool {
		return a.KeyID == b.KeyID && slices.Equal(a.Check, b.Check)
	}) {
		t.Fatalf("KeyChecks = %v, want %v", got, want)
	}
}

func testKeyChecksRecordedInOrder(t *testing.T, s storage.Store) {
	ctx := context.Background()
	wantKeyChecks(t, s)
	// Ids that sort the other way round from recording order: the store
	// keeps recording order.
	second := storage.KeyCheck{KeyID: "b-key", Check: []byte("check of b")}
	first := storage.KeyCheck{KeyID: "z-key", Check: []byte("check of z")}
	for _, c := range []storage.KeyCheck{first, second, first, second} {
		if err := s.RecordKeyCheck(ctx, c); err != nil {
			t.Fatalf("RecordKeyCheck(%q): %v", c.KeyID, err)
		}
	}
	wantKeyChecks(t, s, first, second)

	// The caller owns what it passed and what it got.
	got, err := s.KeyChecks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := storage.KeyCheck{KeyID: first.KeyID, Check: slices.Clone(first.Check)}
	got[0].Check[0] ^= 0xff
	first.Check[0] ^= 0xff
	wantKeyChecks(t, s, stored, second)
}

func testKeyCheckMismatch(t *testing.T, s storage.Store) {
	ctx := context.Background()
	c := storage.KeyCheck{KeyID: "key", Check: []byte("check")}
	if err := s.RecordKeyCheck(ctx, c); err != nil {
		t.Fatal(err)
	}
	other := storage.KeyCheck{KeyID: "key", Check: []byte("another check")}
	if err := s.RecordKeyCheck(ctx, other); !errors.Is(err, storage.ErrKeyCheckMismatch) {
		t.Fatalf("RecordKeyCheck of a different check under a recorded id = %v, want ErrKeyCheckMismatch", err)
	}
	wantKeyChecks(t, s, c)
	// The store still takes writes after the refusal.
	next := storage.KeyCheck{KeyID: "next", Check: []byte("next check")}
	if err := s.RecordKeyCheck(ctx, next); err != nil {
		t.Fatal(err)
	}
	wantKeyChecks(t, s, c, next)
}

func testHashKeyIDFollowsUpdates(t *testing.T, s storage.Store) {
	ctx := context.Background()
	legacy := newToken("Legacy")
	legacy.HashKeyID = ""
	tok := newToken("Keyed")
	create(t, s, legacy, tok)
	wantStored(t, s, legacy)
	wantStored(t, s, tok)
	updated, err := s.UpdateToken(ctx, legacy.ID, func(t *storage.Token) error {
		t.SecretHash, t.HashKeyID = hashOf("rehashed"), "k2"
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if updated.HashKeyID != "k2" {
		t.Fatalf("UpdateToken returned HashKeyID %q, want k2", updated.HashKeyID)
	}
	legacy.SecretHash, legacy.HashKeyID = hashOf("rehashed"), "k2"
	wantStored(t, s, legacy)
	page, err := s.ListTokens(ctx, storage.ListQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	keyIDs := map[string]string{}
	for _, t := range page.Tokens {
		keyIDs[t.ID] = t.HashKeyID
	}
	if keyIDs[legacy.ID] != "k2" || keyIDs[tok.ID] != tok.HashKeyID {
		t.Fatalf("ListTokens key ids = %v", keyIDs)
	}
}
