package bolt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// putAuditEvent stores ev under the next sequence number, with its
// audit_targets entry if it has a target, and returns the ID it was given.
// The caller sets ev.ID once the transaction has committed.
func putAuditEvent(tx *bbolt.Tx, ev *storage.AuditEvent) (string, error) {
	rec, err := encodeAuditEvent(ev)
	if err != nil {
		return "", fmt.Errorf("audit event: %w", err)
	}
	seq, err := auditSequence(tx)
	if err != nil {
		return "", err
	}
	if seq == math.MaxUint64 {
		return "", errors.New("audit event: sequence numbers exhausted")
	}
	seq++
	key := auditKey(seq)
	if err := tx.Bucket(bucketMeta).Put(keyAuditSequence, key); err != nil {
		return "", err
	}
	if err := tx.Bucket(bucketAudit).Put(key, rec); err != nil {
		return "", err
	}
	if ev.TargetID != "" {
		if err := tx.Bucket(bucketAuditTargets).Put(auditTargetKey(ev.TargetID, key), []byte{}); err != nil {
			return "", err
		}
	}
	return auditID(key), nil
}

// auditSequence returns the sequence number of the last audit event
// recorded, 0 if there has been none.
func auditSequence(tx *bbolt.Tx) (uint64, error) {
	v := tx.Bucket(bucketMeta).Get(keyAuditSequence)
	switch len(v) {
	case 0:
		return 0, nil
	case auditKeyLen:
		return binary.BigEndian.Uint64(v), nil
	default:
		return 0, fmt.Errorf("%w: audit sequence of %d bytes", storage.ErrCorrupt, len(v))
	}
}

// ListAuditEvents returns up to q.Limit audit events, newest first, starting
// after the cursor q.After, only those about q.TargetID if it is set. The
// page's Next cursor is set when a further event exists; it names the last
// returned event, so the next page resumes right after it even if events
// were recorded or pruned in between. A filtered listing reads only that
// token's events, through bucketAuditTargets. Returns an error wrapping
// storage.ErrBadCursor for a cursor this method did not produce, and an
// error for a non-positive limit. The events belong to the caller.
func (s *Store) ListAuditEvents(ctx context.Context, q storage.AuditQuery) (*storage.AuditPage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list audit events: limit %d: limit must be positive", q.Limit)
	}
	var after []byte
	if q.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.After)
		if err != nil || len(b) != 1+auditKeyLen || b[0] != cursorAudit {
			return nil, fmt.Errorf("list audit events: %w", storage.ErrBadCursor)
		}
		after = b[1:]
	}

	page := &storage.AuditPage{}
	err := s.view(ctx, "list audit events", func(tx *bbolt.Tx) error {
		events := tx.Bucket(bucketAudit)
		// add puts the event stored under key on the page, or reports that
		// the page is full by setting Next and returning false.
		var last []byte // key of the last event put on the page
		add := func(key, rec []byte) (bool, error) {
			if len(page.Events) == q.Limit {
				// last still points into the transaction's pages, which
				// stay valid until View returns.
				page.Next = base64.RawURLEncoding.EncodeToString(append([]byte{cursorAudit}, last...))
				return false, nil
			}
			ev, err := decodeAuditEvent(key, rec)
			if err != nil {
				return false, fmt.Errorf("audit event %x: %w", key, err)
			}
			page.Events = append(page.Events, ev)
			last = key
			return true, nil
		}

		if q.TargetID == "" {
			c := events.Cursor()
			for k, v := start(c, after, true); k != nil; k, v = c.Prev() {
				if more, err := add(k, v); !more || err != nil {
					return err
				}
			}
			return nil
		}

		prefix := auditTargetPrefix(q.TargetID)
		// Start below the first key past this target's entries (the id
		// followed by the byte after the separator), or below the cursor's
		// entry.
		from := append([]byte(q.TargetID), auditTargetSep+1)
		if after != nil {
			from = auditTargetKey(q.TargetID, after)
		}
		c := tx.Bucket(bucketAuditTargets).Cursor()
		for k, _ := start(c, from, true); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			// An id that continues past this one with the separator byte
			// shares the prefix; its keys are longer.
			if len(k) != len(prefix)+auditKeyLen {
				continue
			}
			key := k[len(prefix):]
			rec := events.Get(key)
			if rec == nil {
				return fmt.Errorf("%w: index %s entry for missing audit event %x", storage.ErrCorrupt, bucketAuditTargets, key)
			}
			if more, err := add(key, rec); !more || err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// PruneAuditEvents deletes, in one transaction, every audit event whose Time
// is before the given time, with its audit_targets entry, and returns how
// many it deleted. Event times are the callers' and need not follow commit
// order, so it reads every event's record; it holds the write lock while it
// does, which makes it an occasional maintenance call. Sequence numbers are
// not reused: events recorded later still get higher IDs. Returns an error
// wrapping storage.ErrCorrupt, deleting nothing, if a record does not
// decode.
func (s *Store) PruneAuditEvents(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := s.update(ctx, "prune audit events", nil, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		events := tx.Bucket(bucketAudit)
		// Collect first, delete after: deleting under a bbolt cursor can
		// make it skip the following key.
		var eventKeys, targetKeys [][]byte
		err := events.ForEach(func(k, v []byte) error {
			ev, err := decodeAuditEvent(k, v)
			if err != nil {
				return fmt.Errorf("audit event %x: %w", k, err)
			}
			if !ev.Time.Before(before) {
				return nil
			}
			eventKeys = append(eventKeys, bytes.Clone(k))
			if ev.TargetID != "" {
				targetKeys = append(targetKeys, auditTargetKey(ev.TargetID, k))
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		for _, k := range eventKeys {
			if err := events.Delete(k); err != nil {
				return nil, false, err
			}
		}
		targets := tx.Bucket(bucketAuditTargets)
		for _, k := range targetKeys {
			if err := targets.Delete(k); err != nil {
				return nil, false, err
			}
		}
		n = len(eventKeys)
		return nil, false, nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
