package bolt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
)

// TestReplayDeliversEveryTokenAcrossBatches stores a number of tokens that
// is not a multiple of the replay's batch and checks that Subscribe
// replays each once, in id order, that LastReplay counts them, and that
// CountTokens agrees before and after a delete.
func TestReplayDeliversEveryTokenAcrossBatches(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, ok := s.LastReplay(); ok {
		t.Error("LastReplay before any Subscribe reports a replay")
	}
	n := 2*replayBatch + 7
	tokens := make([]*storage.Token, n)
	var want []string
	for i := range tokens {
		created := time.Unix(1_800_000_000, int64(i)).UTC()
		tokens[i] = &storage.Token{
			ID: fmt.Sprintf("tok_%05d", i), Name: fmt.Sprintf("token %d", i),
			Kind: storage.KindAPI, Type: storage.TypeReadOnly,
			CreateTime: created, UpdateTime: created,
			SecretHash: fmt.Appendf(nil, "hash-%05d-padded-to-32-bytes...", i),
			HashKeyID:  fmt.Sprint("key-", i/100), // runs of equal ids, as after key rotations
		}
		if i%3 == 0 {
			tokens[i].PreviousSecretHash = fmt.Appendf(nil, "prev-%05d-padded-to-32-bytes...", i)
			tokens[i].PreviousExpireTime = created.Add(time.Hour)
		}
		want = append(want, tokens[i].ID)
	}
	if _, err := s.Bootstrap(ctx, tokens, nil); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if got, err := s.CountTokens(ctx); err != nil || got != n {
		t.Fatalf("CountTokens = %d, %v; want %d", got, err, n)
	}

	var got []string
	var kept []*storage.Token
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	replaying := true
	if err := s.Subscribe(subCtx, func(c storage.Change) {
		if replaying {
			if c.Token == nil || c.Token.ID != c.ID {
				t.Errorf("replayed change %+v: want the token under its own id", c)
			}
			got = append(got, c.ID)
			kept = append(kept, c.Token)
		}
	}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	replaying = false
	if !slices.Equal(got, want) {
		t.Errorf("replayed %d ids, want %d, each once in id order", len(got), len(want))
	}
	// The tokens kept from the replay are whole and independent: the
	// batches share buffers for their hashes, which must not overlap.
	for i, k := range kept {
		if i >= len(tokens) {
			break
		}
		w := tokens[i]
		if string(k.SecretHash) != string(w.SecretHash) || string(k.PreviousSecretHash) != string(w.PreviousSecretHash) ||
			k.HashKeyID != w.HashKeyID || k.Name != w.Name || !k.PreviousExpireTime.Equal(w.PreviousExpireTime) {
			t.Errorf("replayed token %d = %+v, want %+v", i, k, w)
		}
	}
	stats, ok := s.LastReplay()
	if !ok || stats.Tokens != n {
		t.Errorf("LastReplay = %+v, %v; want %d tokens", stats, ok, n)
	}

	if err := s.DeleteToken(ctx, want[0], nil, nil); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if got, err := s.CountTokens(ctx); err != nil || got != n-1 {
		t.Errorf("CountTokens after a delete = %d, %v; want %d", got, err, n-1)
	}
}

// TestCountTokensOnClosedStore returns the storage sentinel.
func TestCountTokensOnClosedStore(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CountTokens(context.Background()); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("CountTokens on a closed store: %v, want ErrClosed", err)
	}
}
