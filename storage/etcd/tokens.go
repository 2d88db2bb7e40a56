package etcd

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
)

// hashKeys returns the hash-index keys of t: the current hash and the
// previous one if any.
func (s *Store) hashKeys(t *storage.Token) []string {
	keys := []string{s.key(dirHashes + hex.EncodeToString(t.SecretHash))}
	if len(t.PreviousSecretHash) > 0 {
		keys = append(keys, s.key(dirHashes+hex.EncodeToString(t.PreviousSecretHash)))
	}
	return keys
}

func (s *Store) tokenKey(id string) string { return s.key(dirTokens + id) }

func (s *Store) nameKey(name string) string { return s.key(dirNames + storage.NameKey(name)) }

func (s *Store) ownerKey(id string) string { return s.key(dirOwners + id) }

// fence returns the operation that writes (or, with put false, deletes)
// the fence of the index key k under dir, if k has one (see dirFences).
func (s *Store) fence(put bool, dir, k string) []clientv3.Op {
	if !isFence(k) {
		return nil
	}
	if put {
		return []clientv3.Op{clientv3.OpPut(s.key(dirFences+dir+k), "")}
	}
	return []clientv3.Op{clientv3.OpDelete(s.key(dirFences + dir + k))}
}

// keepOwner returns the compare under which taking the owner id away
// leaves another: that some other owner's key (see dirOwners) still exists
// when the write commits. It returns an error wrapping storage.ErrLastOwner
// when there is no other owner, or storage.ErrUnavailable.
func (s *Store) keepOwner(ctx context.Context, op, id string) (clientv3.Cmp, error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.key(dirOwners), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(2))
	if err != nil {
		return clientv3.Cmp{}, s.fail(octx, op, err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) != s.ownerKey(id) {
			return clientv3.Compare(clientv3.CreateRevision(string(kv.Key)), ">", 0), nil
		}
	}
	return clientv3.Cmp{}, fmt.Errorf("%s: token %q: %w", op, id, storage.ErrLastOwner)
}

// insert is what creating t adds to a transaction: compares that its id,
// name and hashes are free, the puts of the record and its index entries,
// and the reads that tell, when a compare fails, which one did.
type insert struct {
	cmps  []clientv3.Cmp
	puts  []clientv3.Op
	reads []clientv3.Op
	// what names the sentinel of each read, in order.
	what []error
	// stored is t as a later read decodes it.
	stored *storage.Token
}

func (s *Store) insertOps(t *storage.Token) (*insert, error) {
	if err := storage.CheckKeys(t); err != nil {
		return nil, err
	}
	rec, err := encodeToken(t)
	if err != nil {
		return nil, err
	}
	stored, err := decodeToken(rec)
	if err != nil {
		return nil, err
	}
	in := &insert{stored: stored}
	add := func(key, value string, taken error) {
		in.cmps = append(in.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		in.puts = append(in.puts, clientv3.OpPut(key, value))
		in.reads = append(in.reads, clientv3.OpGet(key, clientv3.WithCountOnly()))
		in.what = append(in.what, taken)
	}
	add(s.tokenKey(t.ID), string(rec), storage.ErrIDTaken)
	add(s.nameKey(t.Name), t.ID, storage.ErrNameTaken)
	for _, k := range s.hashKeys(t) {
		add(k, t.ID, storage.ErrHashTaken)
	}
	created := createdKey(t.CreateTime, t.ID)
	in.puts = append(in.puts, clientv3.OpPut(s.key(dirCreated+created), t.ID))
	in.puts = append(in.puts, s.fence(true, dirNames, storage.NameKey(t.Name))...)
	in.puts = append(in.puts, s.fence(true, dirCreated, created)...)
	if t.IsOwner() {
		in.puts = append(in.puts, clientv3.OpPut(s.ownerKey(t.ID), ""))
	}
	return in, nil
}

// conflict returns the sentinel of the first read of a failed transaction
// that found its key taken, starting at response from.
func conflict(resp *clientv3.TxnResponse, from int, what []error) error {
	for i, taken := range what {
		if resp.Responses[from+i].GetResponseRange().Count > 0 {
			return taken
		}
	}
	return nil
}

// CreateToken stores t, its name, hash and create-time index entries and
// the audit event (if not nil) in one etcd transaction that commits only if
// the id, the name (compared with storage.NameKey) and each secret hash are
// free, on every replica at once; it sets audit.ID once committed. Returns
// an error wrapping storage.ErrIDTaken, storage.ErrNameTaken or
// storage.ErrHashTaken (nothing stored), storage.ErrUnavailable when etcd
// does not answer, and an error for a token without id, name or hash or
// with a time outside years 1677 to 2262.
func (s *Store) CreateToken(ctx context.Context, t *storage.Token, audit *storage.AuditEvent) error {
	const op = "create token"
	if err := s.check(ctx, op); err != nil {
		return err
	}
	in, err := s.insertOps(t)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	auditOps, err := s.auditOps(audit)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	resp, err := s.txn(ctx, op, in.cmps, append(in.puts, auditOps...), in.reads)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: token %q: %w", op, t.ID, conflict(resp, 0, in.what))
	}
	s.committed(ctx, resp, audit, auditOps)
	return nil
}

// txn commits one transaction within the request timeout, mapping errors.
func (s *Store) txn(ctx context.Context, op string, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if len(cmps) > maxTxnOps || len(then) > maxTxnOps || len(els) > maxTxnOps {
		return nil, fmt.Errorf("%s: transaction of %d compares and %d operations exceeds etcd's limit of %d", op, len(cmps), len(then), maxTxnOps)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return resp, nil
}

// committed finishes a committed write that changed tokens: it sets the
// audit event's ID (if one was recorded) and waits until this store's
// subscribers have applied the transaction, so that a caller who reads its
// in-memory index next sees its own write.
func (s *Store) committed(ctx context.Context, resp *clientv3.TxnResponse, audit *storage.AuditEvent, auditOps []clientv3.Op) {
	if audit != nil && len(auditOps) > 0 {
		audit.ID = auditID(resp.Header.Revision)
	}
	s.waitApplied(ctx, resp.Header.Revision)
}

// getToken reads the token with that id and the revision it was last
// changed at.
func (s *Store) getToken(ctx context.Context, op, id string) (*storage.Token, int64, error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.tokenKey(id))
	if err != nil {
		return nil, 0, s.fail(octx, op, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%s: token %q: %w", op, id, storage.ErrNotFound)
	}
	t, err := decodeToken(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: token %q: %w", op, id, err)
	}
	return t, resp.Kvs[0].ModRevision, nil
}

// GetToken returns the token with that id (a linearizable read), or an
// error wrapping storage.ErrNotFound, or storage.ErrUnavailable. The
// returned token belongs to the caller.
func (s *Store) GetToken(ctx context.Context, id string) (*storage.Token, error) {
	if err := s.check(ctx, "get token"); err != nil {
		return nil, err
	}
	t, _, err := s.getToken(ctx, "get token", id)
	return t, err
}

// UpdateToken reads the token, lets modify change a copy and stores it with
// its index changes and the audit event (read after modify returns) in one
// transaction that commits only if the token has not changed since it was
// read and its new name and hashes are free; on a change by another writer
// it reads again and calls modify again. A write that makes an owner no
// longer one also commits only if another owner is still one (see
// dirOwners). It returns the stored token and sets audit.ID once committed.
// An error from modify is returned as is, with nothing stored. Changes to
// ID and CreateTime are ignored. Returns an error wrapping
// storage.ErrNotFound, storage.ErrNameTaken, storage.ErrHashTaken or
// storage.ErrLastOwner (nothing stored), or storage.ErrUnavailable.
func (s *Store) UpdateToken(ctx context.Context, id string, modify func(*storage.Token) error, audit *storage.AuditEvent) (*storage.Token, error) {
	const op = "update token"
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	for range maxRetries {
		old, rev, err := s.getToken(ctx, op, id)
		if err != nil {
			return nil, err
		}
		t := old.Clone()
		if err := modify(t); err != nil {
			return nil, err
		}
		t.ID, t.CreateTime = old.ID, old.CreateTime
		if err := storage.CheckKeys(t); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		rec, err := encodeToken(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		stored, err := decodeToken(rec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		tokenKey := s.tokenKey(id)
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(tokenKey), "=", rev)}
		ops := []clientv3.Op{clientv3.OpPut(tokenKey, string(rec))}
		var (
			reads []clientv3.Op
			what  []error
		)
		free := func(key string, taken error) {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			ops = append(ops, clientv3.OpPut(key, id))
			reads = append(reads, clientv3.OpGet(key, clientv3.WithCountOnly()))
			what = append(what, taken)
		}
		if oldKey, newKey := storage.NameKey(old.Name), storage.NameKey(t.Name); oldKey != newKey {
			ops = append(ops, clientv3.OpDelete(s.key(dirNames+oldKey)))
			ops = append(ops, s.fence(false, dirNames, oldKey)...)
			ops = append(ops, s.fence(true, dirNames, newKey)...)
			free(s.key(dirNames+newKey), storage.ErrNameTaken)
		}
		oldHashes, newHashes := s.hashKeys(old), s.hashKeys(t)
		for _, k := range oldHashes {
			if !contains(newHashes, k) {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		for _, k := range newHashes {
			if !contains(oldHashes, k) {
				free(k, storage.ErrHashTaken)
			}
		}
		switch {
		case old.IsOwner() && !t.IsOwner():
			other, err := s.keepOwner(ctx, op, id)
			if err != nil {
				return nil, err
			}
			cmps = append(cmps, other)
			ops = append(ops, clientv3.OpDelete(s.ownerKey(id)))
		case !old.IsOwner() && t.IsOwner():
			ops = append(ops, clientv3.OpPut(s.ownerKey(id), ""))
		}
		auditOps, err := s.auditOps(audit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		reads = append([]clientv3.Op{clientv3.OpGet(tokenKey, clientv3.WithKeysOnly())}, reads...)
		resp, err := s.txn(ctx, op, cmps, append(ops, auditOps...), reads)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			s.committed(ctx, resp, audit, auditOps)
			return stored, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && kvs[0].ModRevision == rev {
			if taken := conflict(resp, 1, what); taken != nil {
				// The token is as read: a name or hash is taken.
				return nil, fmt.Errorf("%s: token %q: %w", op, id, taken)
			}
		}
		// Changed or deleted by another writer since it was read, or the
		// other owner it relied on is no longer one: again.
	}
	return nil, fmt.Errorf("%s: token %q: %w: gave up after %d conflicting writes", op, id, storage.ErrUnavailable, maxRetries)
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// DeleteToken removes the token and its index entries and stores the audit
// event (if not nil) in one transaction that commits only if the token is
// unchanged since check saw it; on a change by another writer it reads
// again and calls check again. Deleting an owner also commits only if
// another owner is still one (see dirOwners). It sets audit.ID once
// committed. An error from check is returned as is, with nothing deleted.
// Returns an error wrapping storage.ErrNotFound or storage.ErrLastOwner
// (nothing deleted), or storage.ErrUnavailable.
func (s *Store) DeleteToken(ctx context.Context, id string, check func(*storage.Token) error, audit *storage.AuditEvent) error {
	const op = "delete token"
	if err := s.check(ctx, op); err != nil {
		return err
	}
	for range maxRetries {
		old, rev, err := s.getToken(ctx, op, id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(old.Clone()); err != nil {
				return err
			}
		}
		tokenKey := s.tokenKey(id)
		nameKey, created := storage.NameKey(old.Name), createdKey(old.CreateTime, id)
		ops := []clientv3.Op{
			clientv3.OpDelete(tokenKey),
			clientv3.OpDelete(s.key(dirNames + nameKey)),
			clientv3.OpDelete(s.key(dirCreated + created)),
		}
		ops = append(ops, s.fence(false, dirNames, nameKey)...)
		ops = append(ops, s.fence(false, dirCreated, created)...)
		for _, k := range s.hashKeys(old) {
			ops = append(ops, clientv3.OpDelete(k))
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(tokenKey), "=", rev)}
		if old.IsOwner() {
			other, err := s.keepOwner(ctx, op, id)
			if err != nil {
				return err
			}
			cmps = append(cmps, other)
			ops = append(ops, clientv3.OpDelete(s.ownerKey(id)))
		}
		auditOps, err := s.auditOps(audit)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		resp, err := s.txn(ctx, op, cmps, append(ops, auditOps...), nil)
		if err != nil {
			return err
		}
		if resp.Succeeded {
			s.committed(ctx, resp, audit, auditOps)
			return nil
		}
	}
	return fmt.Errorf("%s: token %q: %w: gave up after %d conflicting writes", op, id, storage.ErrUnavailable, maxRetries)
}

// touchBatch is how many tokens one TouchLastUsed transaction updates: one
// compare and one put each.
const touchBatch = maxTxnOps

// TouchLastUsed sets each listed token's LastUsedTime to the later of the
// stored and the given time, in transactions of up to 128 tokens that
// commit only if none of their tokens changed since read (and are retried
// otherwise), so no replica overwrites a newer time, or another change,
// with an older one. Unknown ids are skipped. The change feed does not
// report it (see Subscribe). Returns storage.ErrUnavailable when etcd does
// not answer.
func (s *Store) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	const op = "touch last used"
	if err := s.check(ctx, op); err != nil {
		return err
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	for len(ids) > 0 {
		n := min(len(ids), touchBatch)
		if err := s.touchBatch(ctx, op, ids[:n], used); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func (s *Store) touchBatch(ctx context.Context, op string, ids []string, used map[string]time.Time) error {
	for range maxRetries {
		reads := make([]clientv3.Op, len(ids))
		for i, id := range ids {
			reads[i] = clientv3.OpGet(s.tokenKey(id))
		}
		resp, err := s.txn(ctx, op, nil, reads, nil)
		if err != nil {
			return err
		}
		var (
			cmps []clientv3.Cmp
			puts []clientv3.Op
		)
		for i, id := range ids {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue
			}
			t, err := decodeToken(kvs[0].Value)
			if err != nil {
				return fmt.Errorf("%s: token %q: %w", op, id, err)
			}
			if !used[id].After(t.LastUsedTime) {
				continue
			}
			t.LastUsedTime = used[id]
			rec, err := encodeToken(t)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			key := s.tokenKey(id)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision))
			puts = append(puts, clientv3.OpPut(key, string(rec)))
		}
		if len(puts) == 0 {
			return nil
		}
		wresp, err := s.txn(ctx, op, cmps, puts, nil)
		if err != nil {
			return err
		}
		if wresp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("%s: %w: gave up after %d conflicting writes", op, storage.ErrUnavailable, maxRetries)
}

// Bootstrap stores tokens, with the same checks as CreateToken, and the
// audit event (if not nil), and marks the prefix as bootstrapped, all in one
// transaction that commits only if no replica has bootstrapped it; it
// reports whether it did (so of replicas starting at once, exactly one
// does). Only then is the audit event stored and audit.ID set. Returns
// storage.ErrIDTaken, storage.ErrNameTaken or storage.ErrHashTaken (nothing
// stored) if the tokens clash with each other or with stored ones, and
// storage.ErrUnavailable.
func (s *Store) Bootstrap(ctx context.Context, tokens []*storage.Token, audit *storage.AuditEvent) (bool, error) {
	const op = "bootstrap"
	if err := s.check(ctx, op); err != nil {
		return false, err
	}
	mark := s.key(keyBootstrapped)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(mark), "=", 0)}
	ops := []clientv3.Op{clientv3.OpPut(mark, "")}
	reads := []clientv3.Op{clientv3.OpGet(mark, clientv3.WithCountOnly())}
	var what []error
	seen := make(map[string]error)
	for _, t := range tokens {
		in, err := s.insertOps(t)
		if err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
		// etcd refuses a transaction that puts one key twice, and the
		// compares only see stored keys: clashes within tokens are found
		// here.
		for i, r := range in.reads {
			k := string(r.KeyBytes())
			if _, dup := seen[k]; dup {
				return false, fmt.Errorf("%s: token %q: %w", op, t.ID, in.what[i])
			}
			seen[k] = in.what[i]
		}
		cmps = append(cmps, in.cmps...)
		ops = append(ops, in.puts...)
		reads = append(reads, in.reads...)
		what = append(what, in.what...)
	}
	auditOps, err := s.auditOps(audit)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	resp, err := s.txn(ctx, op, cmps, append(ops, auditOps...), reads)
	if err != nil {
		return false, err
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", op, conflict(resp, 1, what))
	}
	if len(tokens) == 0 {
		// No token changed: the feed has nothing to deliver to wait for.
		if audit != nil {
			audit.ID = auditID(resp.Header.Revision)
		}
		return true, nil
	}
	s.committed(ctx, resp, audit, auditOps)
	return true, nil
}
