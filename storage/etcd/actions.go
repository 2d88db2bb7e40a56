package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
)

// actionBatch is how many actions one RegisterActions transaction writes:
// one compare and one put each, leaving room for the audit event's two.
const actionBatch = maxTxnOps - 2

// RegisterActions adds new actions, stamped with the current time, and
// updates the description of known ones, keeping their RegisterTime, in
// transactions of up to 126 actions that commit only if none of their
// actions changed since read (retried otherwise); the audit event (if not
// nil) is stored with the last one, and audit.ID set once it has committed.
// The event is stored whenever the call succeeds. A transaction that adds
// actions also commits only if no action was added since the catalog was
// counted, so the catalog never holds more than max actions however many
// replicas register at once. A call that fails part way may have
// registered its first actions; registering is idempotent, so a retry
// completes it. Action ids must not be empty. Returns a
// *storage.CatalogFullError when the catalog has no room for the new
// actions (checked for the whole call before anything is written, and again
// by each transaction), and storage.ErrUnavailable when etcd does not answer.
func (s *Store) RegisterActions(ctx context.Context, actions []storage.Action, max int, audit *storage.AuditEvent) error {
	const op = "register actions"
	if err := s.check(ctx, op); err != nil {
		return err
	}
	for _, a := range actions {
		if a.ID == "" {
			return fmt.Errorf("%s: empty action id", op)
		}
	}
	// Later entries for one id win, as they would written one by one.
	byID := make(map[string]int, len(actions))
	var unique []storage.Action
	for _, a := range actions {
		if i, ok := byID[a.ID]; ok {
			unique[i] = a
			continue
		}
		byID[a.ID] = len(unique)
		unique = append(unique, a)
	}
	if err := s.catalogRoom(ctx, op, unique, max); err != nil {
		return err
	}
	for {
		n := min(len(unique), actionBatch)
		var ev *storage.AuditEvent
		if n == len(unique) {
			ev = audit
		}
		if err := s.registerBatch(ctx, op, unique[:n], max, ev); err != nil {
			return err
		}
		unique = unique[n:]
		if len(unique) == 0 {
			return nil
		}
	}
}

// catalogRoom returns a *storage.CatalogFullError if registering actions
// would grow the catalog, as it is now, past max.
func (s *Store) catalogRoom(ctx context.Context, op string, actions []storage.Action, max int) error {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	prefix := s.key(dirActions)
	resp, err := s.cli.Get(octx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return s.fail(octx, op, err)
	}
	known := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		known[strings.TrimPrefix(string(kv.Key), prefix)] = true
	}
	added := 0
	for _, a := range actions {
		if !known[a.ID] {
			added++
		}
	}
	if len(known)+added > max {
		return fmt.Errorf("%s: %w", op, &storage.CatalogFullError{Held: len(known), Max: max, Added: added})
	}
	return nil
}

func (s *Store) registerBatch(ctx context.Context, op string, actions []storage.Action, max int, audit *storage.AuditEvent) error {
	prefix := s.key(dirActions)
	for range maxRetries {
		// The first read counts the catalog, at the revision of the others.
		reads := []clientv3.Op{clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())}
		for _, a := range actions {
			reads = append(reads, clientv3.OpGet(s.key(dirActions+a.ID)))
		}
		resp, err := s.txn(ctx, op, nil, reads, nil)
		if err != nil {
			return err
		}
		var (
			cmps  []clientv3.Cmp
			puts  []clientv3.Op
			added int
		)
		now := s.now()
		for i, a := range actions {
			key := s.key(dirActions + a.ID)
			a.RegisterTime = now
			kvs := resp.Responses[1+i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
				added++
			} else {
				old, err := decodeAction(a.ID, kvs[0].Value)
				if err != nil {
					return fmt.Errorf("%s: %w", op, err)
				}
				if old.Description == a.Description {
					continue
				}
				a.RegisterTime = old.RegisterTime
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision))
			}
			rec, err := encodeAction(a)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			puts = append(puts, clientv3.OpPut(key, string(rec)))
		}
		if added > 0 {
			held := int(resp.Responses[0].GetResponseRange().Count)
			if held+added > max {
				return fmt.Errorf("%s: %w", op, &storage.CatalogFullError{Held: held, Max: max, Added: added})
			}
			// No action created since the count: a range compare, which
			// holds for every key under the prefix.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(prefix), "<", resp.Header.Revision+1).WithPrefix())
		}
		auditOps, err := s.auditOps(audit)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if len(puts) == 0 && len(auditOps) == 0 {
			return nil
		}
		resp, err = s.txn(ctx, op, cmps, append(puts, auditOps...), nil)
		if err != nil {
			return err
		}
		if resp.Succeeded {
			if len(auditOps) > 0 {
				audit.ID = auditID(resp.Header.Revision)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: %w: gave up after %d conflicting writes", op, storage.ErrUnavailable, maxRetries)
}

// ListActions returns the catalog ordered by id, or storage.ErrUnavailable.
func (s *Store) ListActions(ctx context.Context) ([]storage.Action, error) {
	const op = "list actions"
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	prefix := s.key(dirActions)
	resp, err := s.cli.Get(octx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail(octx, op, err)
	}
	actions := make([]storage.Action, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		a, err := decodeAction(strings.TrimPrefix(string(kv.Key), prefix), kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		actions = append(actions, a)
	}
	return actions, nil
}

// KeyChecks returns the recorded key checks in the order they were
// recorded, or storage.ErrUnavailable.
func (s *Store) KeyChecks(ctx context.Context) ([]storage.KeyCheck, error) {
	const op = "key checks"
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	prefix := s.key(dirKeyChecks)
	resp, err := s.cli.Get(octx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, s.fail(octx, op, err)
	}
	var checks []storage.KeyCheck
	for _, kv := range resp.Kvs {
		checks = append(checks, storage.KeyCheck{KeyID: strings.TrimPrefix(string(kv.Key), prefix), Check: bytes.Clone(kv.Value)})
	}
	return checks, nil
}

// RecordKeyCheck records c in a transaction that commits only if no check
// is recorded under c.KeyID, so replicas starting at once agree on one.
// Recording the same check again does nothing. Returns an error wrapping
// storage.ErrKeyCheckMismatch (nothing stored) if a different check is
// recorded under c.KeyID, and storage.ErrUnavailable.
func (s *Store) RecordKeyCheck(ctx context.Context, c storage.KeyCheck) error {
	const op = "record key check"
	if err := s.check(ctx, op); err != nil {
		return err
	}
	if c.KeyID == "" {
		return errors.New("record key check: empty key id")
	}
	key := s.key(dirKeyChecks + c.KeyID)
	resp, err := s.txn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, string(c.Check))},
		[]clientv3.Op{clientv3.OpGet(key)})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && bytes.Equal(kvs[0].Value, c.Check) {
		return nil
	}
	return fmt.Errorf("%s: key id %q: %w", op, c.KeyID, storage.ErrKeyCheckMismatch)
}
