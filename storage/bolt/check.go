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
// (both hashes while it has a previous one) and create-time index entries
// pointing back to it, that no index entry points to a missing or different
// token, that every action and key check decodes, that the name index was built
// with this build's name rule, that every audit event decodes, has a
// key no later than the audit sequence and, if it has a target, its
// audit_targets entry, and that every audit_targets entry points to an
// existing event about that target. It
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
	err := s.guarded(func() error {
		return s.db.View(func(tx *bbolt.Tx) error {
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
			if !nameIndexCurrent(tx) {
				report("name index built with another name rule")
			}
			if _, err := readKeyChecks(tx); err != nil {
				report("%w", err)
			}
			checkTokens(tx, report)
			checkActions(tx, report)
			checkAudit(tx, report)
			return nil
		})
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

	// Forward: each token has its index entries. n counts tokens, and
	// prev those with a previous hash, which have a second hash entry.
	n, prev := 0, 0
	tokens.ForEach(func(k, v []byte) error {
		n++
		t, err := decodeToken(v)
		if err != nil {
			report("token %q: %w", k, err)
			return nil
		}
		if bytes.Equal(t.SecretHash, t.PreviousSecretHash) {
			report("token %q: previous hash equals the current one", k)
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
		if len(t.PreviousSecretHash) > 0 {
			prev++
			if id := hashes.Get(t.PreviousSecretHash); !bytes.Equal(id, k) {
				report("token %q: previous hash index entry points to %q", k, id)
			}
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
		keys   func(t *storage.Token) [][]byte // the token's keys in this index
		want   int                             // number of entries
	}{
		{bucketTokenNames, func(k, v []byte) []byte { return v }, func(t *storage.Token) [][]byte {
			return [][]byte{[]byte(storage.NameKey(t.Name))}
		}, n},
		{bucketTokenHashes, func(k, v []byte) []byte { return v }, secretHashes, n + prev},
		{bucketTokenCreated, func(k, v []byte) []byte {
			if len(k) <= createdKeyLen {
				return nil
			}
			return k[createdKeyLen:]
		}, func(t *storage.Token) [][]byte { return [][]byte{createdKey(t.CreateTime, t.ID)} }, n},
	} {
		entries := 0
		tx.Bucket(idx.bucket).ForEach(func(k, v []byte) error {
			entries++
			id := idx.id(k, v)
			t := lookup(id)
			switch {
			case t == nil:
				report("index %s: entry %d points to missing token %q", idx.bucket, entries, id)
			case !containsKey(idx.keys(t), k):
				report("index %s: entry %d points to token %q, which has another key", idx.bucket, entries, id)
			}
			return nil
		})
		if entries != idx.want {
			report("index %s: %d entries, want %d for %d tokens", idx.bucket, entries, idx.want, n)
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

func checkAudit(tx *bbolt.Tx, report func(string, ...any)) {
	seq, err := auditSequence(tx)
	if err != nil {
		report("meta: %w", err)
	}
	events := tx.Bucket(bucketAudit)
	targets := tx.Bucket(bucketAuditTargets)

	// Forward: each event decodes, was numbered by the sequence, and has
	// its audit_targets entry if it has a target.
	indexed := 0
	events.ForEach(func(k, v []byte) error {
		ev, err := decodeAuditEvent(k, v)
		if err != nil {
			report("audit event %x: %w", k, err)
			return nil
		}
		if binary.BigEndian.Uint64(k) > seq {
			report("audit event %s: after the audit sequence %d", ev.ID, seq)
		}
		if ev.TargetID != "" {
			indexed++
			if targets.Get(auditTargetKey(ev.TargetID, k)) == nil {
				report("audit event %s: audit_targets entry for target %q missing", ev.ID, ev.TargetID)
			}
		}
		return nil
	})

	// Backward: each entry names an event about that target. With the
	// forward check and equal counts, there are no extra entries.
	entries := 0
	targets.ForEach(func(k, v []byte) error {
		entries++
		target, key, ok := splitAuditTargetKey(k)
		if !ok {
			report("index %s: entry %d: malformed key %q", bucketAuditTargets, entries, k)
			return nil
		}
		rec := events.Get(key)
		if rec == nil {
			report("index %s: entry %d points to missing audit event %x", bucketAuditTargets, entries, key)
			return nil
		}
		ev, err := decodeAuditEvent(key, rec)
		if err == nil && ev.TargetID != target {
			report("index %s: entry %d for target %q points to audit event %s, which is about %q", bucketAuditTargets, entries, target, ev.ID, ev.TargetID)
		}
		return nil // a decode failure was reported above
	})
	if entries != indexed {
		report("index %s: %d entries for %d events with a target", bucketAuditTargets, entries, indexed)
	}
}
