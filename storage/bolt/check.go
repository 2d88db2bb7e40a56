package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// maxCheckErrors bounds the report of CheckConsistency: past a few dozen
// problems more lines do not help.
const maxCheckErrors = 50

// CheckConsistency verifies the file in one read transaction: bbolt's own
// page-level check, that every token record decodes and has its name, hash
// and create-time index entries pointing back to it, that no index entry
// points to a missing or different token, and that every action decodes. It
// returns nil or every problem found (up to a limit) joined into one error,
// or an error wrapping storage.ErrClosed. It blocks writes while it runs,
// because bbolt's check is not safe alongside a writer on a read
// transaction; it reads the whole file, so it is meant for tests and
// operator tools, not the serving path.
func (s *Store) CheckConsistency() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("check consistency: %w", storage.ErrClosed)
	}
	var problems []error
	report := func(format string, args ...any) {
		if len(problems) < maxCheckErrors {
			problems = append(problems, fmt.Errorf(format, args...))
		}
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			report("bbolt: %w", err)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				report("bucket %s missing", name)
			}
		}
		if len(problems) > 0 {
			return nil
		}
		if v := tx.Bucket(bucketMeta).Get(keySchemaVersion); !bytes.Equal(v, binary.AppendUvarint(nil, schemaVersion)) {
			report("schema version %x, want %d", v, schemaVersion)
		}
		checkTokens(tx, report)
		checkActions(tx, report)
		return nil
	})
	if err != nil {
		return fmt.Errorf("check consistency: %w", mapClosed(err))
	}
	if len(problems) > 0 {
		return fmt.Errorf("check consistency: %w", errors.Join(problems...))
	}
	return nil
}

func checkTokens(tx *bbolt.Tx, report func(string, ...any)) {
	tokens := tx.Bucket(bucketTokens)
	names := tx.Bucket(bucketTokenNames)
	hashes := tx.Bucket(bucketTokenHashes)
	created := tx.Bucket(bucketTokenCreated)

	// Forward: each token has its three index entries.
	n := 0
	tokens.ForEach(func(k, v []byte) error {
		n++
		t, err := decodeToken(v)
		if err != nil {
			report("token %q: %w", k, err)
			return nil
		}
		if t.ID != string(k) {
			report("token %q: record has id %q", k, t.ID)
		}
		if id := names.Get([]byte(storage.NameKey(t.Name))); !bytes.Equal(id, k) {
			report("token %q: name index entry points to %q", k, id)
		}
		// The hash is not printed: error messages never carry secret hashes.
		if id := hashes.Get(t.SecretHash); !bytes.Equal(id, k) {
			report("token %q: hash index entry points to %q", k, id)
		}
		if created.Get(createdKey(t.CreateTime, t.ID)) == nil {
			report("token %q: create-time index entry missing", k)
		}
		return nil
	})

	// Backward: each index entry names a token that has that key. With the
	// forward check and equal counts, there are no dangling entries.
	lookup := func(id []byte) *storage.Token {
		v := tokens.Get(id)
		if v == nil {
			return nil
		}
		t, _ := decodeToken(v) // a decode failure was reported above
		return t
	}
	for _, idx := range []struct {
		bucket []byte
		id     func(k, v []byte) []byte
		key    func(t *storage.Token) []byte
	}{
		{bucketTokenNames, func(k, v []byte) []byte { return v }, func(t *storage.Token) []byte { return []byte(storage.NameKey(t.Name)) }},
		{bucketTokenHashes, func(k, v []byte) []byte { return v }, func(t *storage.Token) []byte { return t.SecretHash }},
		{bucketTokenCreated, func(k, v []byte) []byte {
			if len(k) <= createdKeyLen {
				return nil
			}
			return k[createdKeyLen:]
		}, func(t *storage.Token) []byte { return createdKey(t.CreateTime, t.ID) }},
	} {
		entries := 0
		tx.Bucket(idx.bucket).ForEach(func(k, v []byte) error {
			entries++
			id := idx.id(k, v)
			t := lookup(id)
			switch {
			case t == nil:
				report("index %s: entry %d points to missing token %q", idx.bucket, entries, id)
			case !bytes.Equal(idx.key(t), k):
				report("index %s: entry %d points to token %q, which has another key", idx.bucket, entries, id)
			}
			return nil
		})
		if entries != n {
			report("index %s: %d entries for %d tokens", idx.bucket, entries, n)
		}
	}
}

func checkActions(tx *bbolt.Tx, report func(string, ...any)) {
	tx.Bucket(bucketActions).ForEach(func(k, v []byte) error {
		if _, err := decodeAction(string(k), v); err != nil {
			report("action %q: %w", k, err)
		}
		return nil
	})
}
