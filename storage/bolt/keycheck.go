package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// keyKeyChecks in bucketMeta holds the recorded key checks, in the order
// they were recorded: a uvarint count, then for each a uvarint-prefixed key
// id and check. A file without it has recorded none.
var keyKeyChecks = []byte("key_checks")

// KeyChecks returns the recorded key checks in the order they were recorded.
func (s *Store) KeyChecks(ctx context.Context) ([]storage.KeyCheck, error) {
	var checks []storage.KeyCheck
	err := s.view(ctx, "key checks", func(tx *bbolt.Tx) error {
		var err error
		checks, err = decodeKeyChecks(tx.Bucket(bucketMeta).Get(keyKeyChecks))
		return err
	})
	return checks, err
}

// RecordKeyCheck records c unless its KeyID is recorded; it returns an error
// wrapping storage.ErrKeyCheckMismatch, storing nothing, if a different
// check is recorded under that id.
func (s *Store) RecordKeyCheck(ctx context.Context, c storage.KeyCheck) error {
	return s.update(ctx, "record key check", nil, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		meta := tx.Bucket(bucketMeta)
		checks, err := decodeKeyChecks(meta.Get(keyKeyChecks))
		if err != nil {
			return nil, false, err
		}
		for _, k := range checks {
			if k.KeyID == c.KeyID {
				if !bytes.Equal(k.Check, c.Check) {
					return nil, false, fmt.Errorf("key id %q: %w", c.KeyID, storage.ErrKeyCheckMismatch)
				}
				return nil, false, nil
			}
		}
		checks = append(checks, c)
		b := binary.AppendUvarint(nil, uint64(len(checks)))
		for _, k := range checks {
			b = appendString(b, k.KeyID)
			b = appendBytes(b, k.Check)
		}
		return nil, false, meta.Put(keyKeyChecks, b)
	})
}

func decodeKeyChecks(b []byte) ([]storage.KeyCheck, error) {
	if b == nil {
		return nil, nil
	}
	d := decoder{b: b}
	n := d.uvarint("key check count")
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("key check count")
	}
	var checks []storage.KeyCheck
	for i := uint64(0); d.err == nil && i < n; i++ {
		checks = append(checks, storage.KeyCheck{KeyID: d.string("key id"), Check: d.copiedBytes("check")})
	}
	if err := d.finish("key checks"); err != nil {
		return nil, err
	}
	return checks, nil
}
