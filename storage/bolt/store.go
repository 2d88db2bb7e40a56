package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tokend/tokend/storage"
)

// Options configure Open.
type Options struct {
	// Timeout bounds the wait for the file lock held by another handle
	// (usually another tokend process on the same data directory). Zero
	// means one second.
	Timeout time.Duration
	// Now returns the current time, used to stamp newly registered actions
	// and the audit events of renames by a name index rebuild at Open, and
	// to pace Ping's write probes.
	// Nil means time.Now; tests set it to get fixed times.
	Now func() time.Time
}

// defaultTimeout is used when Options.Timeout is zero: long enough to ride
// out a previous process that is still shutting down, short enough that a
// second instance on the same file fails fast instead of hanging.
const defaultTimeout = time.Second

// Store is a storage.Store backed by a bbolt file. Create it with Open; it
// is safe for concurrent use.
type Store struct {
	db  *bbolt.DB
	now func() time.Time

	// closed is set by Close. Reads check it without taking mu; a read
	// racing with Close gets bbolt's ErrDatabaseNotOpen, mapped to
	// storage.ErrClosed.
	closed atomic.Bool
	// done is closed by Close to end the goroutines that wait for a
	// subscriber's ctx.
	done chan struct{}

	// mu is held by every write across its transaction and the delivery
	// of its changes to subscribers, so subscribers see changes in commit
	// order and have applied them when the write returns. Reads do not
	// take it. It also guards subs.
	mu   sync.Mutex
	subs []*subscriber

	// writeErr is the error of the last write that failed to commit (a
	// full or read-only disk), nil once a write commits again. Ping
	// reports it.
	writeErr  atomic.Pointer[error]
	lastProbe atomic.Int64 // unix nanoseconds of Ping's last write probe
	// damage is the first error wrapping storage.ErrCorrupt that a
	// transaction met (a record that does not decode, or a page bbolt
	// panicked on). A damaged file does not heal, so Ping keeps
	// reporting it.
	damage atomic.Pointer[error]
	// replay is what the last Subscribe's replay of the stored tokens
	// took; nil before the first.
	replay atomic.Pointer[ReplayStats]
}

type subscriber struct {
	ctx   context.Context
	apply func(storage.Change)
}

var _ storage.Store = (*Store)(nil)

// FileName is the name tokend gives the database file in its data directory.
const FileName = "tokend.db"

// Open opens the bbolt file at path, creating it with mode 0600 if it does
// not exist, creates the buckets of a fresh file and upgrades a file of an
// older schema version (see initSchema). It fails if another handle holds
// the file for longer than opts.Timeout, if the file was written with a
// schema version this package does not know (a newer tokend), or, with an
// error wrapping storage.ErrCorrupt, if the file is damaged where Open reads
// it.
func Open(path string, opts Options) (_ *Store, err error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	var db *bbolt.DB
	defer func() {
		if err != nil && db != nil {
			closeDamaged(db)
		}
	}()
	err = guard(func() error {
		var err error
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
		return err
	})
	if err != nil {
		db = nil // a handle that panicked half-open is not ours to close
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: file is locked by another handle, probably another tokend (waited %v): %w", path, timeout, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// A file that is up to date is only read: opening writes nothing
	// unless a fresh file or an upgrade needs it.
	current := false
	if err := guard(func() error { return db.View(func(tx *bbolt.Tx) error { current = schemaCurrent(tx); return nil }) }); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !current {
		if err := guard(func() error { return db.Update(initSchema(now().UTC())) }); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	return &Store{db: db, now: now, done: make(chan struct{})}, nil
}

// closeDamaged closes a handle whose file turned out to be damaged; bbolt
// may panic on the way, and the caller already has the error that matters.
func closeDamaged(db *bbolt.DB) {
	_ = guard(db.Close)
}

// schemaCurrent reports whether the file has this version's layout: its
// schema version, every bucket, and a name index built with this build's
// name rule.
func schemaCurrent(tx *bbolt.Tx) bool {
	meta := tx.Bucket(bucketMeta)
	if meta == nil || !bytes.Equal(meta.Get(keySchemaVersion), binary.AppendUvarint(nil, schemaVersion)) {
		return false
	}
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return false
		}
	}
	return nameIndexCurrent(tx)
}

// initSchema returns the transaction that writes the schema version and
// creates the buckets of a fresh file, and checks (and if older, upgrades)
// the version of an existing one. An upgrade creates the buckets a version
// added and, whenever the name rule changed (see nameIndexCurrent), rebuilds
// the name index (see rebuildNameIndex; renames get audit events at now).
func initSchema(now time.Time) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta != nil {
			v := meta.Get(keySchemaVersion)
			version, n := binary.Uvarint(v)
			if n <= 0 || n != len(v) {
				return fmt.Errorf("%w: unreadable schema version", storage.ErrCorrupt)
			}
			if version < 1 || version > schemaVersion {
				return fmt.Errorf("unsupported schema version %d (this build reads versions 1 to %d; was the file written by a newer tokend?)", version, schemaVersion)
			}
			// Older versions' records are read as they are (decodeToken
			// knows every format). Recording the new version makes an
			// older tokend refuse the file instead of writing changes
			// without what this version keeps with them.
		} else {
			// A bbolt file with buckets but no meta was written by
			// something else: refuse it rather than mix our buckets into it.
			if k, _ := tx.Cursor().First(); k != nil {
				return errors.New("not a tokend database (no meta bucket)")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
		}
		if !bytes.Equal(meta.Get(keySchemaVersion), binary.AppendUvarint(nil, schemaVersion)) {
			if err := meta.Put(keySchemaVersion, binary.AppendUvarint(nil, schemaVersion)); err != nil {
				return err
			}
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if nameIndexCurrent(tx) {
			return nil
		}
		_, err := rebuildNameIndex(tx, now)
		return err
	}
}

// Close closes the file. It waits for writes in progress (and their delivery
// to subscribers) and for open read transactions, and ends every
// subscription. It returns storage.ErrClosed if the store is already closed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return fmt.Errorf("close: %w", storage.ErrClosed)
	}
	close(s.done)
	s.subs = nil
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// Ping reports whether the store can serve reads and writes. Once any call
// has met damage (an error wrapping storage.ErrCorrupt), Ping returns that
// error for good. A read
// transaction succeeds on a full or read-only disk, so Ping also returns the
// error of the last write that failed to commit, until a write commits
// again. While in that state it probes, at most every probeInterval, with a
// write of probeSize bytes (removed again at once): large enough to need
// fresh pages, so a disk with no room left fails it, and readiness comes
// back when the disk does even if no client writes. It returns
// storage.ErrClosed after Close.
func (s *Store) Ping(ctx context.Context) error {
	if damage := s.damage.Load(); damage != nil {
		return *damage
	}
	err := s.view(ctx, "ping", func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketTokens) == nil {
			return fmt.Errorf("%w: tokens bucket missing", storage.ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return err
	}
	failed := s.writeErr.Load()
	if failed == nil {
		return nil
	}
	now := s.now()
	if last := s.lastProbe.Load(); last != 0 && now.Sub(time.Unix(0, last)) < probeInterval {
		return *failed
	}
	s.lastProbe.Store(now.UnixNano())
	probe := make([]byte, probeSize)
	if err := s.update(ctx, "write probe", nil, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		return nil, false, tx.Bucket(bucketMeta).Put(keyWriteProbe, probe)
	}); err != nil {
		return err
	}
	return s.update(ctx, "write probe", nil, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		return nil, false, tx.Bucket(bucketMeta).Delete(keyWriteProbe)
	})
}

// The write probe of Ping after a failed commit.
const (
	probeSize     = 64 << 10
	probeInterval = 5 * time.Second
)

// CreateToken stores t, its indexes and the audit event (if not nil) in one
// transaction, and sets audit.ID once it has committed. It returns an error
// wrapping storage.ErrIDTaken, storage.ErrNameTaken or storage.ErrHashTaken,
// and stores nothing, if the id, the name (compared with storage.NameKey) or
// either secret hash is in use, or if PreviousSecretHash equals SecretHash.
// t must have an id, a name and a secret hash, and times within years 1677
// to 2262 (the audit event's time too).
func (s *Store) CreateToken(ctx context.Context, t *storage.Token, audit *storage.AuditEvent) error {
	return s.update(ctx, "create token", audit, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		stored, err := insertToken(tx, t)
		if err != nil {
			return nil, false, err
		}
		return []storage.Change{{ID: stored.ID, Token: stored}}, true, nil
	})
}

// GetToken returns the token with that id, or an error wrapping
// storage.ErrNotFound. The returned token belongs to the caller.
func (s *Store) GetToken(ctx context.Context, id string) (*storage.Token, error) {
	var t *storage.Token
	err := s.view(ctx, "get token", func(tx *bbolt.Tx) error {
		var err error
		t, err = getToken(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// UpdateToken reads the token, lets modify change a copy and stores it with
// its indexes and the audit event (if not nil), read after modify returns,
// in one transaction; it returns the stored token and sets audit.ID once the
// transaction has committed. modify runs once, under the store's write
// lock, so it must not call the Store. An error from modify is returned
// unwrapped and nothing is stored. Changes to ID and CreateTime are
// ignored. Returns an error wrapping storage.ErrNotFound, or
// storage.ErrNameTaken or storage.ErrHashTaken (nothing stored) when the new
// name or a new secret hash belongs to another token, or when
// PreviousSecretHash equals SecretHash; a change of case of the token's own
// name is allowed, and so is moving the current hash to PreviousSecretHash.
// Returns an error wrapping storage.ErrLastOwner (nothing stored) when the
// token is the only owner and would no longer be one.
func (s *Store) UpdateToken(ctx context.Context, id string, modify func(*storage.Token) error, audit *storage.AuditEvent) (*storage.Token, error) {
	var (
		stored    *storage.Token
		modifyErr error
	)
	err := s.update(ctx, "update token", audit, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		old, err := getToken(tx, id)
		if err != nil {
			return nil, false, err
		}
		t := old.Clone()
		if err := modify(t); err != nil {
			modifyErr = err
			return nil, false, err
		}
		t.ID, t.CreateTime = old.ID, old.CreateTime
		if err := keepOwner(tx, old, t); err != nil {
			return nil, false, err
		}
		if stored, err = replaceToken(tx, old, t); err != nil {
			return nil, false, err
		}
		return []storage.Change{{ID: id, Token: stored.Clone()}}, true, nil
	})
	if modifyErr != nil {
		return nil, modifyErr
	}
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// DeleteToken removes the token and its indexes (both secret hashes) and
// stores the audit event (if not nil) in one transaction, and sets audit.ID
// once it has committed. Returns an error wrapping storage.ErrNotFound if
// there is no such token, and storage.ErrLastOwner (nothing deleted) if it
// is the only owner.
func (s *Store) DeleteToken(ctx context.Context, id string, check func(*storage.Token) error, audit *storage.AuditEvent) error {
	var checkErr error
	err := s.update(ctx, "delete token", audit, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		old, err := getToken(tx, id)
		if err != nil {
			return nil, false, err
		}
		if check != nil {
			if err := check(old.Clone()); err != nil {
				checkErr = err
				return nil, false, err
			}
		}
		if err := keepOwner(tx, old, nil); err != nil {
			return nil, false, err
		}
		if err := deleteToken(tx, old); err != nil {
			return nil, false, err
		}
		return []storage.Change{{ID: id}}, true, nil
	})
	if checkErr != nil {
		return checkErr
	}
	return err
}

// TouchLastUsed sets, in one transaction, each listed token's LastUsedTime
// to the later of the stored and the given time. Unknown ids are skipped.
// It publishes no change.
func (s *Store) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	return s.update(ctx, "touch last used", nil, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		tokens := tx.Bucket(bucketTokens)
		for id, last := range used {
			v := tokens.Get([]byte(id))
			if v == nil {
				continue
			}
			t, err := decodeToken(v)
			if err != nil {
				return nil, false, fmt.Errorf("token %q: %w", id, err)
			}
			if !last.After(t.LastUsedTime) {
				continue
			}
			t.LastUsedTime = last
			rec, err := encodeToken(t)
			if err != nil {
				return nil, false, fmt.Errorf("token %q: %w", id, err)
			}
			if err := tokens.Put([]byte(id), rec); err != nil {
				return nil, false, err
			}
		}
		return nil, false, nil
	})
}

// Bootstrap stores tokens, with the same checks as CreateToken, and the
// audit event (if not nil), and marks the store as bootstrapped, all in one
// transaction, unless it is already marked; it reports whether it stored
// them. Only then is the audit event stored and audit.ID set. On error
// nothing is stored.
func (s *Store) Bootstrap(ctx context.Context, tokens []*storage.Token, audit *storage.AuditEvent) (bool, error) {
	did := false
	err := s.update(ctx, "bootstrap", audit, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyBootstrapped) != nil {
			return nil, false, nil
		}
		changes := make([]storage.Change, 0, len(tokens))
		for _, t := range tokens {
			stored, err := insertToken(tx, t)
			if err != nil {
				return nil, false, err
			}
			changes = append(changes, storage.Change{ID: stored.ID, Token: stored})
		}
		if err := meta.Put(keyBootstrapped, []byte{}); err != nil {
			return nil, false, err
		}
		did = true
		return changes, true, nil
	})
	if err != nil {
		return false, err
	}
	return did, nil
}

// RegisterActions adds new actions, stamped with the current time, and
// updates the description of known ones, keeping their RegisterTime, and
// stores the audit event (if not nil), in one transaction; it sets audit.ID
// once that has committed. The event is stored whenever the call succeeds,
// even if every action was already registered as given. Action ids must not
// be empty. Returns a *storage.CatalogFullError (nothing stored) if the
// catalog would hold more than max actions.
func (s *Store) RegisterActions(ctx context.Context, actions []storage.Action, max int, audit *storage.AuditEvent) error {
	return s.update(ctx, "register actions", audit, func(tx *bbolt.Tx) ([]storage.Change, bool, error) {
		b := tx.Bucket(bucketActions)
		held := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			held++
		}
		added := make(map[string]bool)
		for _, a := range actions {
			if a.ID == "" {
				return nil, false, errors.New("empty action id")
			}
			if b.Get([]byte(a.ID)) == nil {
				added[a.ID] = true
			}
		}
		if held+len(added) > max {
			return nil, false, &storage.CatalogFullError{Held: held, Max: max, Added: len(added)}
		}
		now := s.now()
		for _, a := range actions {
			key := []byte(a.ID)
			a.RegisterTime = now
			if v := b.Get(key); v != nil {
				old, err := decodeAction(a.ID, v)
				if err != nil {
					return nil, false, fmt.Errorf("action %q: %w", a.ID, err)
				}
				if old.Description == a.Description {
					continue
				}
				a.RegisterTime = old.RegisterTime
			}
			rec, err := encodeAction(a)
			if err != nil {
				return nil, false, fmt.Errorf("action %q: %w", a.ID, err)
			}
			if err := b.Put(key, rec); err != nil {
				return nil, false, err
			}
		}
		return nil, true, nil
	})
}

// ListActions returns the catalog ordered by id.
func (s *Store) ListActions(ctx context.Context) ([]storage.Action, error) {
	var actions []storage.Action
	err := s.view(ctx, "list actions", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketActions).ForEach(func(k, v []byte) error {
			a, err := decodeAction(string(k), v)
			if err != nil {
				return fmt.Errorf("action %q: %w", k, err)
			}
			actions = append(actions, a)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return actions, nil
}

// Subscribe calls apply with every stored token, then with every change
// committed through this Store, in commit order, until ctx is done or the
// store is closed. It returns once the stored tokens have been replayed.
// apply runs while the store's write lock is held, so it must be quick and
// must not call the Store: a write from apply deadlocks. Returns ctx.Err()
// if ctx is already done, or storage.ErrClosed.
func (s *Store) Subscribe(ctx context.Context, apply func(storage.Change)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("subscribe: %w", storage.ErrClosed)
	}
	// Replaying under mu means no write can commit between the replay and
	// the registration, so the subscriber misses nothing and sees nothing
	// twice. Holding the read transaction open while apply runs is fine:
	// writers are waiting on mu anyway.
	var stats ReplayStats
	begin := time.Now()
	err := s.guarded(func() error {
		return s.db.View(func(tx *bbolt.Tx) error { return replay(tx, apply, &stats) })
	})
	stats.Took = time.Since(begin)
	s.replay.Store(&stats)
	if err != nil {
		return fmt.Errorf("subscribe: %w", mapClosed(err))
	}
	sub := &subscriber{ctx: ctx, apply: apply}
	s.subs = append(s.subs, sub)
	go func() {
		select {
		case <-ctx.Done():
			s.removeSubscriber(sub)
		case <-s.done:
		}
	}()
	return nil
}

func (s *Store) removeSubscriber(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
			return
		}
	}
}

// update runs fn in a write transaction, then, if fn succeeded and says to
// (record), stores audit in the same transaction; once the transaction has
// committed it sets audit.ID and delivers the changes fn returns to every
// subscriber, all under mu. audit is read only after fn returns, so fn may
// fill it in, and audit.ID is left alone when nothing is committed. Errors
// are prefixed with op; an error from fn is otherwise kept as is (so
// errors.Is sees the sentinels), and bbolt's "not open" becomes
// storage.ErrClosed.
func (s *Store) update(ctx context.Context, op string, audit *storage.AuditEvent, fn func(*bbolt.Tx) (changes []storage.Change, record bool, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, storage.ErrClosed)
	}
	var (
		changes []storage.Change
		auditID string
	)
	var fnErr error // a refusal of the write itself, not a store failure
	err := s.guarded(func() error {
		return s.db.Update(func(tx *bbolt.Tx) error {
			var (
				record bool
				err    error
			)
			changes, record, err = fn(tx)
			if err != nil {
				fnErr = err
			}
			if err != nil || !record || audit == nil {
				return err
			}
			auditID, err = putAuditEvent(tx, audit)
			return err
		})
	})
	if err != nil {
		err = fmt.Errorf("%s: %w", op, mapClosed(err))
		if fnErr == nil || errors.Is(err, storage.ErrCorrupt) {
			s.writeErr.Store(&err)
		}
		return err
	}
	s.writeErr.Store(nil)
	if auditID != "" {
		audit.ID = auditID
	}
	s.publish(changes)
	return nil
}

// publish delivers changes to the subscribers whose ctx is not done. Each
// subscriber gets its own copy of each token, since the caller owns it. The
// caller holds mu.
func (s *Store) publish(changes []storage.Change) {
	if len(changes) == 0 {
		return
	}
	for _, sub := range s.subs {
		for _, c := range changes {
			// Checked per change so that a subscriber stops as soon as its
			// ctx is cancelled, not when the goroutine removing it runs.
			if sub.ctx.Err() != nil {
				break
			}
			if c.Token != nil {
				c.Token = c.Token.Clone()
			}
			sub.apply(c)
		}
	}
}

// view runs fn in a read transaction, mapping errors like update.
func (s *Store) view(ctx context.Context, op string, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, storage.ErrClosed)
	}
	if err := s.guarded(func() error { return s.db.View(fn) }); err != nil {
		return fmt.Errorf("%s: %w", op, mapClosed(err))
	}
	return nil
}

// guarded runs fn (a bbolt transaction) through guard and remembers the
// first damage it meets, for Ping.
func (s *Store) guarded(fn func() error) error {
	err := guard(fn)
	if errors.Is(err, storage.ErrCorrupt) {
		s.damage.CompareAndSwap(nil, &err)
	}
	return err
}

// guard runs fn and turns a panic into an error wrapping storage.ErrCorrupt.
// bbolt trusts its pages: a damaged one makes it fail an assertion, index
// out of range or read outside its memory map, all of which panic (the
// last only because guard asks the runtime to turn such faults into panics
// for this goroutine while fn runs). A transaction that panics is rolled
// back by bbolt on the way out, so the handle stays usable for the calls
// that do not touch the damage.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the database file is damaged (%v); restore it from a backup", storage.ErrCorrupt, r)
		}
	}()
	return fn()
}

func mapClosed(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return err
}

// getToken reads and decodes the token with that id.
func getToken(tx *bbolt.Tx, id string) (*storage.Token, error) {
	v := tx.Bucket(bucketTokens).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("token %q: %w", id, storage.ErrNotFound)
	}
	t, err := decodeToken(v)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", id, err)
	}
	return t, nil
}

// secretHashes returns the hashes of t that token_hashes indexes: the
// current one and the previous one if any.
func secretHashes(t *storage.Token) [][]byte {
	if len(t.PreviousSecretHash) == 0 {
		return [][]byte{t.SecretHash}
	}
	return [][]byte{t.SecretHash, t.PreviousSecretHash}
}

// containsKey reports whether k is one of keys.
func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// insertToken stores a new token and its index entries (name, each secret
// hash, create time), and returns the token as stored (as a later read
// would decode it).
func insertToken(tx *bbolt.Tx, t *storage.Token) (*storage.Token, error) {
	if err := storage.CheckKeys(t); err != nil {
		return nil, err
	}
	rec, err := encodeToken(t)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", t.ID, err)
	}
	id := []byte(t.ID)
	tokens := tx.Bucket(bucketTokens)
	names := tx.Bucket(bucketTokenNames)
	hashes := tx.Bucket(bucketTokenHashes)
	if tokens.Get(id) != nil {
		return nil, fmt.Errorf("token %q: %w", t.ID, storage.ErrIDTaken)
	}
	nameKey := []byte(storage.NameKey(t.Name))
	if names.Get(nameKey) != nil {
		return nil, fmt.Errorf("token %q: name %q: %w", t.ID, t.Name, storage.ErrNameTaken)
	}
	secrets := secretHashes(t)
	for _, h := range secrets {
		if hashes.Get(h) != nil {
			return nil, fmt.Errorf("token %q: %w", t.ID, storage.ErrHashTaken)
		}
	}
	if err := tokens.Put(id, rec); err != nil {
		return nil, err
	}
	if err := names.Put(nameKey, id); err != nil {
		return nil, err
	}
	for _, h := range secrets {
		if err := hashes.Put(h, id); err != nil {
			return nil, err
		}
	}
	if err := tx.Bucket(bucketTokenCreated).Put(createdKey(t.CreateTime, t.ID), []byte{}); err != nil {
		return nil, err
	}
	return decodeToken(rec)
}

// replaceToken stores t in place of old (same id and create time), moving
// the name and hash index entries if they changed, and returns t as stored.
// A hash that moves between SecretHash and PreviousSecretHash keeps its
// entry, which points to the token either way.
func replaceToken(tx *bbolt.Tx, old, t *storage.Token) (*storage.Token, error) {
	if err := storage.CheckKeys(t); err != nil {
		return nil, err
	}
	rec, err := encodeToken(t)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", t.ID, err)
	}
	id := []byte(t.ID)
	if oldKey, newKey := storage.NameKey(old.Name), storage.NameKey(t.Name); oldKey != newKey {
		names := tx.Bucket(bucketTokenNames)
		if names.Get([]byte(newKey)) != nil {
			return nil, fmt.Errorf("token %q: name %q: %w", t.ID, t.Name, storage.ErrNameTaken)
		}
		if err := names.Delete([]byte(oldKey)); err != nil {
			return nil, err
		}
		if err := names.Put([]byte(newKey), id); err != nil {
			return nil, err
		}
	}
	hashes := tx.Bucket(bucketTokenHashes)
	oldSecrets, newSecrets := secretHashes(old), secretHashes(t)
	// Check every new hash before changing anything, so a refusal leaves
	// no half-moved entry for the rollback to undo.
	for _, h := range newSecrets {
		if !containsKey(oldSecrets, h) && hashes.Get(h) != nil {
			return nil, fmt.Errorf("token %q: %w", t.ID, storage.ErrHashTaken)
		}
	}
	for _, h := range oldSecrets {
		if !containsKey(newSecrets, h) {
			if err := hashes.Delete(h); err != nil {
				return nil, err
			}
		}
	}
	for _, h := range newSecrets {
		if !containsKey(oldSecrets, h) {
			if err := hashes.Put(h, id); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Bucket(bucketTokens).Put(id, rec); err != nil {
		return nil, err
	}
	return decodeToken(rec)
}

// keepOwner refuses, with storage.ErrLastOwner, a write that turns old into
// t (nil for a deletion) when old is the only owner and t is not one. The
// store has one writer, so what the scan finds holds until the write's
// transaction commits. The scan reads every token, but only a write that
// takes an owner away runs it.
func keepOwner(tx *bbolt.Tx, old, t *storage.Token) error {
	if !old.IsOwner() || (t != nil && t.IsOwner()) {
		return nil
	}
	c := tx.Bucket(bucketTokens).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if string(k) == old.ID {
			continue
		}
		other, err := decodeToken(v)
		if err != nil {
			return fmt.Errorf("token %q: %w", k, err)
		}
		if other.IsOwner() {
			return nil
		}
	}
	return fmt.Errorf("token %q: %w", old.ID, storage.ErrLastOwner)
}

// deleteToken removes a stored token and its index entries.
func deleteToken(tx *bbolt.Tx, t *storage.Token) error {
	type entry struct {
		bucket []byte
		key    []byte
	}
	entries := []entry{
		{bucketTokens, []byte(t.ID)},
		{bucketTokenNames, []byte(storage.NameKey(t.Name))},
		{bucketTokenCreated, createdKey(t.CreateTime, t.ID)},
	}
	for _, h := range secretHashes(t) {
		entries = append(entries, entry{bucketTokenHashes, h})
	}
	for _, e := range entries {
		if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	return nil
}
