package etcd

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
)

// ListAuditEvents returns up to q.Limit audit events, newest first,
// starting after the cursor q.After, only those about q.TargetID if it is
// set. Events are listed by the revision that committed them, read at one
// revision. The Next cursor names the last returned event's revision, so the
// next page resumes right after it even if events were recorded or pruned
// in between. Returns an error wrapping storage.ErrBadCursor for a cursor
// this method did not produce, storage.ErrUnavailable, and an error for a
// non-positive limit. The events belong to the caller.
func (s *Store) ListAuditEvents(ctx context.Context, q storage.AuditQuery) (*storage.AuditPage, error) {
	const op = "list audit events"
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%s: limit %d: limit must be positive", op, q.Limit)
	}
	var before int64 // list events committed before this revision; 0 for all
	if q.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.After)
		if err != nil || len(b) != 9 || b[0] != cursorAudit {
			return nil, fmt.Errorf("%s: %w", op, storage.ErrBadCursor)
		}
		before = int64(binary.BigEndian.Uint64(b[1:]))
		if before <= 1 {
			return &storage.AuditPage{}, nil
		}
	}
	prefix := s.key(dirAuditEvents)
	if q.TargetID != "" {
		prefix = s.key(dirAuditTargets + q.TargetID + "\x00")
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend)}
	if q.TargetID == "" {
		// A filtered listing drops keys below, so it cannot stop early.
		opts = append(opts, clientv3.WithLimit(int64(q.Limit)+1))
	}
	if before != 0 {
		opts = append(opts, clientv3.WithMaxCreateRev(before-1))
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, prefix, opts...)
	if err != nil {
		return nil, s.fail(octx, op, err)
	}
	page := &storage.AuditPage{}
	keys := resp.Kvs
	if q.TargetID != "" {
		// An id that continues past this one after a NUL shares the
		// prefix; its keys are longer than one event key.
		n := 0
		for _, kv := range keys {
			if len(kv.Key)-len(prefix) == eventKeyLen {
				keys[n] = kv
				n++
			}
		}
		keys = keys[:n]
	}
	if len(keys) > q.Limit {
		keys = keys[:q.Limit]
		rev := keys[q.Limit-1].CreateRevision
		page.Next = base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64([]byte{cursorAudit}, uint64(rev)))
	}
	if q.TargetID == "" {
		for _, kv := range keys {
			ev, err := decodeAuditEvent(kv.CreateRevision, kv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", op, kv.Key, err)
			}
			page.Events = append(page.Events, ev)
		}
		return page, nil
	}
	if len(keys) == 0 {
		return page, nil
	}
	reads := make([]clientv3.Op, len(keys))
	for i, kv := range keys {
		reads[i] = clientv3.OpGet(s.key(dirAuditEvents+string(kv.Value)), clientv3.WithRev(resp.Header.Revision))
	}
	for len(reads) > 0 {
		n := min(len(reads), maxTxnOps)
		tresp, err := s.txn(ctx, op, nil, reads[:n], nil)
		if err != nil {
			return nil, err
		}
		for i := range n {
			kvs := tresp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				return nil, fmt.Errorf("%s: %w: target entry for missing audit event %q", op, storage.ErrCorrupt, reads[i].KeyBytes())
			}
			ev, err := decodeAuditEvent(kvs[0].CreateRevision, kvs[0].Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", op, kvs[0].Key, err)
			}
			page.Events = append(page.Events, ev)
		}
		reads = reads[n:]
	}
	return page, nil
}

// PruneAuditEvents deletes every audit event whose Time is before the
// given time, with its target entry, and returns how many it deleted. It
// reads every event (times are the callers' and need not follow commit
// order), then deletes in transactions of up to 64 events: a failure part
// way leaves the older events partly pruned, which a retry finishes.
// Revisions are not reused, so events recorded later still get higher IDs.
// Returns storage.ErrUnavailable when etcd does not answer, and an error
// wrapping storage.ErrCorrupt, deleting nothing, if a record does not
// decode.
func (s *Store) PruneAuditEvents(ctx context.Context, before time.Time) (int, error) {
	const op = "prune audit events"
	if err := s.check(ctx, op); err != nil {
		return 0, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.key(dirAuditEvents), clientv3.WithPrefix())
	if err != nil {
		return 0, s.fail(octx, op, err)
	}
	var dels []clientv3.Op
	for _, kv := range resp.Kvs {
		ev, err := decodeAuditEvent(kv.CreateRevision, kv.Value)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", op, kv.Key, err)
		}
		if !ev.Time.Before(before) {
			continue
		}
		dels = append(dels, clientv3.OpDelete(string(kv.Key)))
		if ev.TargetID != "" {
			k := strings.TrimPrefix(string(kv.Key), s.key(dirAuditEvents))
			dels = append(dels, clientv3.OpDelete(s.key(dirAuditTargets+auditTargetKey(ev.TargetID, k))))
		}
	}
	n := 0
	for len(dels) > 0 {
		// An event and its target entry stay in one transaction.
		k := min(len(dels), maxTxnOps)
		if k < len(dels) && dels[k].IsDelete() && strings.HasPrefix(string(dels[k].KeyBytes()), s.key(dirAuditTargets)) {
			k--
		}
		tresp, err := s.txn(ctx, op, nil, dels[:k], nil)
		if err != nil {
			return n, err
		}
		for i, r := range tresp.Responses {
			if strings.HasPrefix(string(dels[i].KeyBytes()), s.key(dirAuditEvents)) {
				n += int(r.GetResponseDeleteRange().Deleted)
			}
		}
		dels = dels[k:]
	}
	return n, nil
}
