package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// keyCheckKey returns the key_checks key of the n-th recorded check: 8
// bytes big-endian, so that key order is recording order.
func keyCheckKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// KeyChecks returns the recorded key checks in recording order; none (nil)
// for a store that never recorded one. Returns an error wrapping
// storage.ErrCorrupt for an unreadable record, or storage.ErrClosed.
func (s *Store) KeyChecks(ctx context.Context) ([]storage.KeyCheck, error) {
	var checks []storage.KeyCheck
	err := s.view(ctx, "key checks", func(tx *bbolt.Tx) error {
		var err error
		checks, err = readKeyChecks(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return checks, nil
}

func readKeyChecks(tx *bbolt.Tx) ([]storage.KeyCheck, error) {
	var checks []storage.KeyCheck
	err := tx.Bucket(bucketKeyChecks).ForEach(func(k, v []byte) error {
		c, err := decodeKeyCheck(v)
		if err != nil {
			return fmt.Errorf("key check %x: %w", k, err)
		}
		checks = append(checks, c)
		return nil
	})
	return checks, err
}

// RecordKeyCheck records c after the checks already recorded, unless one
// with c.KeyID is recorded: then it does nothing if that one has the same
// Check, and returns an error wrapping storage.ErrKeyCheckMismatch (nothing
// stored) if not. c.KeyID and c.Check must not be empty.
func (s *Store) RecordKeyCheck(ctx context.Context, c storage.KeyCheck) error {
	if c.KeyID == "" || len(c.Check) == 0 {
		return errors.New("record key check: empty key id or check")
	}
	return s.update(ctx, "record key check", nil, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		checks, err := readKeyChecks(tx)
		if err != nil {
			return nil, false, err
		}
		for _, old := range checks {
			if old.KeyID != c.KeyID {
				continue
			}
			if !bytes.Equal(old.Check, c.Check) {
				return nil, false, fmt.Errorf("key id %q: %w", c.KeyID, storage.ErrKeyCheckMismatch)
			}
			return nil, false, nil
		}
		b := tx.Bucket(bucketKeyChecks)
		next := uint64(1)
		if k, _ := b.Cursor().Last(); len(k) == 8 {
			next = binary.BigEndian.Uint64(k) + 1
		}
		return nil, false, b.Put(keyCheckKey(next), encodeKeyCheck(c))
	})
}
