package etcd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/tokend/tokend/storage"
)

// Config configures Open.
type Config struct {
	// Endpoints are the etcd client URLs, e.g. http://10.0.0.1:2379.
	Endpoints []string
	// DialTimeout bounds the first connection; default 5 s.
	DialTimeout time.Duration
	// TLS, when set, is used for the client connections (CA, client
	// certificate).
	TLS *tls.Config
	// Prefix starts every key this store reads or writes, so one etcd
	// cluster can serve several installations; default DefaultPrefix.
	Prefix string
	// RequestTimeout bounds each call to etcd: past it the call fails
	// with storage.ErrUnavailable. Default 5 s.
	RequestTimeout time.Duration
	// ProgressInterval is how often a subscriber asks etcd to confirm
	// that its watch is complete (see FeedConfirmedAt); default 1 s.
	ProgressInterval time.Duration
	// Now stamps newly registered actions and times the feed's
	// confirmations (FeedConfirmedAt), so a reader comparing those with
	// its own clock must use the same one; default time.Now.
	Now func() time.Time
	// Logger receives the change feed's reconnects and reloads; default
	// slog.Default().
	Logger *slog.Logger
}

// DefaultPrefix is the key prefix when Config.Prefix is empty.
const DefaultPrefix = "/tokend/"

// maxTxnOps bounds the operations of one transaction (and, separately,
// its compares): etcd refuses more than --max-txn-ops, 128 by default.
const maxTxnOps = 128

// maxRetries bounds how often a write re-reads and retries after another
// replica changed what it read. Each retry means another write committed,
// so hitting it means heavy contention on one token.
const maxRetries = 64

// Store is a storage.Store in etcd. Create it with Open; it is safe for
// concurrent use.
type Store struct {
	cli              *clientv3.Client
	prefix           string
	timeout          time.Duration
	progressInterval time.Duration
	now              func() time.Time
	log              *slog.Logger

	closed atomic.Bool
	done   chan struct{} // closed by Close: ends every feed
	feeds  sync.WaitGroup

	mu   sync.Mutex // guards subs
	subs map[*subscriber]struct{}
	// confirmed is the oldest of the subscribers' confirmation times, as
	// unix nanoseconds (see FeedConfirmedAt).
	confirmed atomic.Int64
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.FeedFreshness = (*Store)(nil)
)

// Open connects to etcd and checks (or, under an empty prefix, writes) the
// schema version. It fails if etcd does not answer within the dial and
// request timeouts, or if the prefix was written with a schema version this
// package does not know (a newer tokend).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	s := &Store{
		prefix: cfg.Prefix, timeout: cfg.RequestTimeout, progressInterval: cfg.ProgressInterval,
		now: cfg.Now, log: cfg.Logger, done: make(chan struct{}), subs: make(map[*subscriber]struct{}),
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.progressInterval <= 0 {
		s.progressInterval = time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: dial, TLS: cfg.TLS,
		// etcd's client logs every reconnect at warn level; the feed logs
		// what matters to an operator.
		Logger: zap.NewNop(),
		// gRPC's reconnect backoff grows to two minutes; a replica should
		// notice within a second or two that etcd is back.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s.cli = cli
	if err := s.initSchema(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd: prefix %q at %s: %w", s.prefix, strings.Join(cfg.Endpoints, ","), err)
	}
	return s, nil
}

// initSchema writes the schema version under a fresh prefix, checks the
// version of a used one, and upgrades a version 1 prefix.
func (s *Store) initSchema(ctx context.Context) error {
	const op = "schema version"
	key := s.key(keySchemaVersion)
	for range maxRetries {
		resp, err := s.txn(ctx, op, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(key, schemaVersion)}, []clientv3.Op{clientv3.OpGet(key)})
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		var v string
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			v = string(kvs[0].Value)
		}
		switch v {
		case schemaVersion:
			return nil
		case schemaVersionV1:
			if done, err := s.upgradeV1(ctx); err != nil || done {
				return err
			}
			// Tokens were written meanwhile, or another replica upgraded
			// the prefix: look again.
		default:
			return fmt.Errorf("unsupported schema version %q (this build reads version %s; was it written by a newer tokend?)", v, schemaVersion)
		}
	}
	return fmt.Errorf("%s: %w: gave up upgrading after %d conflicting writes", op, storage.ErrUnavailable, maxRetries)
}

// upgradeV1 upgrades a version 1 prefix to version 2 from the tokens as
// read at one revision: it writes their fences (dirFences), then the owner
// index (dirOwners) and the new version in one transaction that commits
// only if the version is still 1, no token was written since that revision
// and every owner found is still there; it reports whether that
// transaction committed. Fences written for a token changed meanwhile are
// harmless (see dirFences). A replica of
// the previous version refuses the prefix once it is upgraded, so every
// replica should be stopped before the first one of the new version
// starts. If there are more owners than fit in one transaction only the
// first are indexed: the index may miss owners (a write may then be
// refused that could have been allowed), never list a token that is not one.
func (s *Store) upgradeV1(ctx context.Context) (bool, error) {
	const op = "upgrade schema"
	tokens, rev, err := s.snapshot(ctx)
	if err != nil {
		return false, err
	}
	var fences []clientv3.Op
	for _, t := range tokens {
		fences = append(fences, s.fence(true, dirNames, storage.NameKey(t.Name))...)
		fences = append(fences, s.fence(true, dirCreated, createdKey(t.CreateTime, t.ID))...)
	}
	for chunk := range slices.Chunk(fences, maxTxnOps) {
		if _, err := s.txn(ctx, op, nil, chunk, nil); err != nil {
			return false, err
		}
	}
	prefix, version := s.key(dirTokens), s.key(keySchemaVersion)
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(version), "=", schemaVersionV1),
		clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix(),
	}
	ops := []clientv3.Op{clientv3.OpPut(version, schemaVersion)}
	for _, t := range tokens {
		if t.IsOwner() && len(cmps) < maxTxnOps {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.tokenKey(t.ID)), ">", 0))
			ops = append(ops, clientv3.OpPut(s.ownerKey(t.ID), ""))
		}
	}
	resp, err := s.txn(ctx, op, cmps, ops, nil)
	if err != nil || !resp.Succeeded {
		return false, err
	}
	s.log.InfoContext(ctx, "etcd: upgraded the prefix's key layout", slog.String("from", schemaVersionV1),
		slog.String("to", schemaVersion), slog.Int("owners", len(ops)-1), slog.Int("fences", len(fences)))
	return true, nil
}

// Close ends every subscription and closes the connection. It returns
// storage.ErrClosed if the store is already closed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return fmt.Errorf("close: %w", storage.ErrClosed)
	}
	close(s.done)
	s.mu.Unlock()
	s.feeds.Wait()
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// Ping reads the schema version: it fails with an error wrapping
// storage.ErrUnavailable while etcd cannot serve a linearizable read (no
// member reachable, or no leader), and storage.ErrClosed after Close.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(ctx, "ping"); err != nil {
		return err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.cli.Get(ctx, s.key(keySchemaVersion)); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// key returns the full etcd key of k under the prefix.
func (s *Store) key(k string) string { return s.prefix + k }

// opContext bounds one call to etcd by the request timeout.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// check returns the error of a call that must not start: the caller's ctx
// is done, or the store is closed.
func (s *Store) check(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, storage.ErrClosed)
	}
	return nil
}

// fail turns an error from the etcd client into the store's error model:
// storage.ErrClosed after Close, the caller's own cancellation as is, and
// anything else (no member reachable, no leader, the request timeout) as
// storage.ErrUnavailable, with etcd's error kept for the log. ctx is the
// call's context, derived from the caller's by opContext.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, storage.ErrClosed)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, cause)
	}
	return fmt.Errorf("%s: %w: %w", op, storage.ErrUnavailable, err)
}

// newEventKey returns a fresh random audit event key.
func newEventKey() string {
	var b [eventKeyLen / 2]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// auditOps returns the puts that record ev, committed in the transaction
// of the change it describes.
func (s *Store) auditOps(ev *storage.AuditEvent) ([]clientv3.Op, error) {
	if ev == nil {
		return nil, nil
	}
	rec, err := encodeAuditEvent(ev)
	if err != nil {
		return nil, fmt.Errorf("audit event: %w", err)
	}
	k := newEventKey()
	ops := []clientv3.Op{clientv3.OpPut(s.key(dirAuditEvents+k), string(rec))}
	if ev.TargetID != "" {
		ops = append(ops, clientv3.OpPut(s.key(dirAuditTargets+auditTargetKey(ev.TargetID, k)), k))
	}
	return ops, nil
}
