package bolt

import (
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// ReplayStats is where the replay of the stored tokens at Subscribe spent
// its time. The replay runs in batches of replayBatch records, each read
// from the file, then decoded, then applied, so the three phases are timed
// apart at the cost of three clock reads per batch.
type ReplayStats struct {
	Tokens int
	// Read is the time spent walking the records in the file: bbolt's
	// cursor over the memory-mapped pages, so it includes the page faults
	// that read the file from disk when it is not in the page cache (a
	// record shares its page with its header, except one larger than a
	// page, whose further pages are read while decoding).
	Read time.Duration
	// Decode is the time spent turning records into storage.Token values.
	Decode time.Duration
	// Apply is the time spent in the subscriber's apply (building the
	// caller's index).
	Apply time.Duration
	// Took is the whole replay, transaction included.
	Took time.Duration
}

// LastReplay returns what the last Subscribe's replay of the stored tokens
// took, and false if Subscribe has not replayed yet.
func (s *Store) LastReplay() (ReplayStats, bool) {
	if r := s.replay.Load(); r != nil {
		return *r, true
	}
	return ReplayStats{}, false
}

// replayBatch is the number of records read, then decoded, then applied at
// a time: large enough that the clock reads cost nothing next to the work,
// small enough that the batch's records stay in the CPU caches.
const replayBatch = 256

// replay calls apply with every token of tx, in id order, and times the
// phases into stats.
func replay(tx *bbolt.Tx, apply func(storage.Change), stats *ReplayStats) error {
	var (
		keys, values [replayBatch][]byte
		tokens       [replayBatch]*storage.Token
		a            arena
	)
	c := tx.Bucket(bucketTokens).Cursor()
	k, v := c.First()
	for k != nil {
		t0 := time.Now()
		n := 0
		for ; k != nil && n < replayBatch; k, v = c.Next() {
			keys[n], values[n] = k, v
			n++
		}
		t1 := time.Now()
		// One allocation for the batch's tokens rather than one each,
		// and their hashes in the arena's shared buffers: the replay
		// leaves a few large objects behind, not two million small ones
		// interleaved with the index's own small objects (which would
		// keep pages resident after the collection). apply may keep a
		// token, which then keeps its slab and buffer.
		slab := make([]storage.Token, n)
		for i := range n {
			if err := decodeTokenInto(&slab[i], values[i], &a); err != nil {
				return fmt.Errorf("token %q: %w", keys[i], err)
			}
			tokens[i] = &slab[i]
		}
		t2 := time.Now()
		for i := range n {
			apply(storage.Change{ID: tokens[i].ID, Token: tokens[i]})
			tokens[i] = nil
		}
		t3 := time.Now()
		stats.Read += t1.Sub(t0)
		stats.Decode += t2.Sub(t1)
		stats.Apply += t3.Sub(t2)
		stats.Tokens += n
	}
	return nil
}

// CountTokens returns the number of stored tokens, from the name index
// (one short key per token, so far fewer pages to walk than the records).
// A caller building an index of every token sizes it with this before
// Subscribe. Returns ctx.Err(), storage.ErrClosed or an error wrapping
// storage.ErrCorrupt.
func (s *Store) CountTokens(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, "count tokens", func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketTokenNames).Stats().KeyN
		return nil
	})
	return n, err
}
