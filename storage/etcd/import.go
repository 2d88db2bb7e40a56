package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
)

// ErrNotEmpty is returned by Import when the prefix already holds data.
var ErrNotEmpty = errors.New("etcd: the prefix already holds data")

// ImportStats counts what Import copied.
type ImportStats struct {
	Tokens, Actions, AuditEvents, KeyChecks int
}

// importBatch is how many tokens one Import transaction writes: up to eight
// keys each (record, name, two hashes, create time, owner, two fences).
const importBatch = maxTxnOps / 8

// Import copies everything src holds into this store's prefix, which must
// be empty (only the schema version Open wrote): tokens with their hashes
// and last-use times, the action catalog, the key checks, and the audit
// events, oldest first, so they keep their order (their IDs become this
// store's: the revisions that wrote them). It marks the prefix as
// bootstrapped, so no replica started on it creates first-start tokens.
// src must not change while Import runs (stop every tokend using it).
// Returns ErrNotEmpty, touching nothing, when the prefix holds data;
// storage.ErrUnavailable when etcd does not answer; and src's errors. A
// failure part way leaves a partial copy: delete the prefix and start
// again.
func (s *Store) Import(ctx context.Context, src storage.Store) (ImportStats, error) {
	const op = "import"
	var st ImportStats
	if err := s.check(ctx, op); err != nil {
		return st, err
	}
	octx, cancel := s.opContext(ctx)
	resp, err := s.cli.Get(octx, s.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(2))
	cancel()
	if err != nil {
		return st, s.fail(octx, op, err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) != s.key(keySchemaVersion) {
			return st, fmt.Errorf("%s: prefix %q: %w", op, s.prefix, ErrNotEmpty)
		}
	}
	mark := s.key(keyBootstrapped)
	if resp, err := s.txn(ctx, op, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(mark), "=", 0)}, []clientv3.Op{clientv3.OpPut(mark, "")}, nil); err != nil {
		return st, err
	} else if !resp.Succeeded {
		return st, fmt.Errorf("%s: prefix %q: %w", op, s.prefix, ErrNotEmpty)
	}

	checks, err := src.KeyChecks(ctx)
	if err != nil {
		return st, fmt.Errorf("%s: read key checks: %w", op, err)
	}
	for _, c := range checks {
		if err := s.RecordKeyCheck(ctx, c); err != nil {
			return st, fmt.Errorf("%s: %w", op, err)
		}
		st.KeyChecks++
	}

	actions, err := src.ListActions(ctx)
	if err != nil {
		return st, fmt.Errorf("%s: read actions: %w", op, err)
	}
	for chunk := range slices.Chunk(actions, maxTxnOps) {
		var puts []clientv3.Op
		for _, a := range chunk {
			rec, err := encodeAction(a)
			if err != nil {
				return st, fmt.Errorf("%s: %w", op, err)
			}
			puts = append(puts, clientv3.OpPut(s.key(dirActions+a.ID), string(rec)))
		}
		if _, err := s.txn(ctx, op, nil, puts, nil); err != nil {
			return st, err
		}
		st.Actions += len(chunk)
	}

	q := storage.ListQuery{Limit: importBatch}
	for {
		page, err := src.ListTokens(ctx, q)
		if err != nil {
			return st, fmt.Errorf("%s: read tokens: %w", op, err)
		}
		var (
			cmps []clientv3.Cmp
			puts []clientv3.Op
		)
		for _, t := range page.Tokens {
			in, err := s.insertOps(t)
			if err != nil {
				return st, fmt.Errorf("%s: %w", op, err)
			}
			cmps = append(cmps, in.cmps...)
			puts = append(puts, in.puts...)
		}
		if len(puts) > 0 {
			resp, err := s.txn(ctx, op, cmps, puts, nil)
			if err != nil {
				return st, err
			}
			if !resp.Succeeded {
				return st, fmt.Errorf("%s: tokens clash with tokens written meanwhile: %w", op, ErrNotEmpty)
			}
		}
		st.Tokens += len(page.Tokens)
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}

	// Newest first from src; written oldest first, one per transaction,
	// since an event's ID is the revision that wrote it.
	var events []*storage.AuditEvent
	aq := storage.AuditQuery{Limit: 1000}
	for {
		page, err := src.ListAuditEvents(ctx, aq)
		if err != nil {
			return st, fmt.Errorf("%s: read audit events: %w", op, err)
		}
		events = append(events, page.Events...)
		if page.Next == "" {
			break
		}
		aq.After = page.Next
	}
	for _, ev := range slices.Backward(events) {
		ops, err := s.auditOps(ev)
		if err != nil {
			return st, fmt.Errorf("%s: %w", op, err)
		}
		if _, err := s.txn(ctx, op, nil, ops, nil); err != nil {
			return st, err
		}
		st.AuditEvents++
	}
	return st, nil
}
