package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// Defaults for Config.
const (
	DefaultAPIPrefix     = "tkd"
	DefaultAdminPrefix   = "tkda"
	DefaultFlushInterval = time.Minute

	DefaultAuthFailureLimit  = 20
	DefaultAuthFailureWindow = time.Minute

	// DefaultMaxActions bounds the API action catalog.
	DefaultMaxActions = 10000

	// DefaultMaxStaleness is Config.MaxStaleness when unset.
	DefaultMaxStaleness = 30 * time.Second
)

// DefaultLifespans are the token durations offered when none are configured.
var DefaultLifespans = []time.Duration{7 * 24 * time.Hour, 30 * 24 * time.Hour, 90 * 24 * time.Hour}

// Config configures a Service. Store and HashKeys are required.
type Config struct {
	Store storage.Store
	// HashKeys key the HMAC-SHA-256 of secrets (each at least 32 bytes),
	// newest first: new secrets are hashed with the first, and secrets
	// issued under any of them verify. Dropping a key kills the tokens
	// issued under it.
	HashKeys [][]byte
	// APIPrefix and AdminPrefix start the secrets of each kind (lower-case
	// letters and digits); defaults "tkd" and "tkda".
	APIPrefix, AdminPrefix string
	// Lifespans are the allowed token durations; default DefaultLifespans.
	Lifespans []time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives errors the caller only sees as "internal error";
	// default slog.Default().
	Logger *slog.Logger
	// AuthFailureLimit is how many failed authentications one client
	// address may make per AuthFailureWindow before its further failures
	// are answered ResourceExhausted until the window ends. Default 20 per
	// minute; negative disables damping.
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
	// MaxActions is how many actions the API catalog may hold; default
	// DefaultMaxActions. Registering more is refused.
	MaxActions int
	// MaxStaleness is how far behind the store the in-memory index may be
	// known to be before introspection fails closed (Unavailable) rather
	// than answer from it: a replica cut off from a shared store must not
	// accept a token another replica revoked. It applies only to a store
	// whose feed can fall behind (storage.FeedFreshness); default
	// DefaultMaxStaleness, negative never fails closed.
	MaxStaleness time.Duration
	// ExpiryWarnings are the times before a token's expiry at which
	// watchers get an EXPIRING event; default DefaultExpiryWarnings.
	ExpiryWarnings []time.Duration
	// WatchHeartbeat is the interval of watch heartbeats; default
	// DefaultWatchHeartbeat. WatchBuffer is how many events are kept for
	// lagging or reconnecting watchers; default DefaultWatchBuffer.
	WatchHeartbeat time.Duration
	WatchBuffer    int
}

// Service implements tokendv1.TokenServiceServer.
type Service struct {
	tokendv1.UnimplementedTokenServiceServer

	store     storage.Store
	secrets   secretFormat
	hasher    *hasher
	index     *index
	lifespans []time.Duration
	now       func() time.Time
	log       *slog.Logger
	failures  *failureLimiter // nil when damping is off
	watch     *watchHub

	stopFeed context.CancelFunc
	flushMu  sync.Mutex // one flush at a time
	// maxActions bounds the API action catalog; the store enforces it
	// (storage.Store.RegisterActions).
	maxActions int

	// feed is the store's freshness when it can fall behind, else nil;
	// maxStale is Config.MaxStaleness in nanoseconds (0: never stale).
	feed      storage.FeedFreshness
	maxStale  int64
	lastFlush atomic.Int64 // unix nanoseconds of the last flush without error
}

// New builds a Service and loads every stored token into its in-memory
// index. Close releases it.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("service: no store")
	}
	if cfg.APIPrefix == "" {
		cfg.APIPrefix = DefaultAPIPrefix
	}
	if cfg.AdminPrefix == "" {
		cfg.AdminPrefix = DefaultAdminPrefix
	}
	secrets, err := newSecretFormat(cfg.APIPrefix, cfg.AdminPrefix)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	h, err := newHasher(cfg.HashKeys)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	lifespans := slices.Clone(cfg.Lifespans)
	if len(lifespans) == 0 {
		lifespans = slices.Clone(DefaultLifespans)
	}
	for _, l := range lifespans {
		if l <= 0 || l%time.Second != 0 {
			return nil, fmt.Errorf("service: lifespan %s: want a positive whole number of seconds", l)
		}
	}
	slices.Sort(lifespans)
	lifespans = slices.Compact(lifespans)
	s := &Service{
		store:     cfg.Store,
		secrets:   secrets,
		hasher:    h,
		index:     newIndex(),
		lifespans: lifespans,
		now:       cfg.Now,
		log:       cfg.Logger,

		maxActions: cfg.MaxActions,
	}
	if s.maxActions <= 0 {
		s.maxActions = DefaultMaxActions
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.lastFlush.Store(s.now().UnixNano())
	if cfg.AuthFailureLimit >= 0 {
		limit, window := cfg.AuthFailureLimit, cfg.AuthFailureWindow
		if limit == 0 {
			limit = DefaultAuthFailureLimit
		}
		if window <= 0 {
			window = DefaultAuthFailureWindow
		}
		s.failures = newFailureLimiter(limit, window)
	}
	if f, ok := cfg.Store.(storage.FeedFreshness); ok {
		s.feed = f
		if cfg.MaxStaleness == 0 {
			cfg.MaxStaleness = DefaultMaxStaleness
		}
		s.maxStale = max(int64(cfg.MaxStaleness), 0)
	}
	warnings := cfg.ExpiryWarnings
	if warnings == nil {
		warnings = DefaultExpiryWarnings
	}
	s.watch = newWatchHub(s.now, warnings, cfg.WatchHeartbeat, cfg.WatchBuffer, s.index.byTokenID)
	// The pause starts before the index is sized: its maps are the first
	// large allocations, and would otherwise start a collection at once.
	resumeGC := pauseGC()
	if c, ok := s.store.(tokenCounter); ok {
		// Only a hint: a count that fails or is already stale costs some
		// map growth, nothing else.
		if n, err := c.CountTokens(ctx); err == nil {
			s.index.reserve(n)
		}
	}
	feedCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	err = s.store.Subscribe(feedCtx, s.applyChange)
	resumeGC()
	if err != nil {
		stop()
		return nil, fmt.Errorf("service: load tokens: %w", err)
	}
	go s.watch.runDeadlines(feedCtx)
	s.stopFeed = stop
	return s, nil
}

// Lifespans returns the allowed token durations, shortest first.
func (s *Service) Lifespans() []time.Duration { return slices.Clone(s.lifespans) }

// TokenCount returns the number of tokens in the in-memory index.
func (s *Service) TokenCount() int { return s.index.size() }

// TokensByHashKey returns how many tokens have their secret hashed under
// each hash key, by key id (see HashKeyCheck); "" counts the tokens stored
// before key ids were recorded. A key that no token uses any more can be
// dropped from the key file.
func (s *Service) TokensByHashKey() map[string]int { return s.index.byHashKey() }

// HashKeyIDs returns the ids of the service's hash keys, newest first.
func (s *Service) HashKeyIDs() []string { return slices.Clone(s.hasher.keyIDs) }

// Ready reports whether the service can serve: its store answers, and its
// index is not staler than Config.MaxStaleness.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return err
	}
	if s.stale(s.now()) {
		return fmt.Errorf("token index not confirmed current for %s (more than the allowed %s)", s.IndexStaleness().Round(time.Millisecond), time.Duration(s.maxStale))
	}
	return nil
}

// IndexStaleness returns how long ago the in-memory index was last known to
// hold every change committed to the store: 0 for a store whose changes are
// applied before each write returns.
func (s *Service) IndexStaleness() time.Duration {
	if s.feed == nil {
		return 0
	}
	return max(s.now().Sub(s.feed.FeedConfirmedAt()), 0)
}

// stale reports whether, at now, the index may be further behind the store
// than allowed. It is on the introspection hot path: one atomic load.
func (s *Service) stale(now time.Time) bool {
	return s.maxStale > 0 && now.UnixNano()-s.feed.FeedConfirmedAt().UnixNano() > s.maxStale
}

// Close flushes pending last-use times and stops following the change feed.
// It does not close the store.
func (s *Service) Close(ctx context.Context) error {
	err := s.FlushLastUsed(ctx)
	s.stopFeed()
	return err
}

// RunFlusher writes last-use times to the store every interval until ctx is
// done, or until the store reports damage (an error wrapping
// storage.ErrCorrupt), which it logs. It does not flush on return: Close
// does.
func (s *Service) RunFlusher(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := s.FlushLastUsed(ctx)
			if err != nil && errors.Is(err, storage.ErrCorrupt) {
				// Retrying cannot help and would log the same damage every
				// interval; readiness reports it from now on (the store's
				// Ping does).
				s.log.Error("last-used flushing stopped: the database file is damaged; restore it from a backup", slog.Any("error", err))
				return
			}
			if err != nil && ctx.Err() == nil {
				s.log.Error("flush last-used times", slog.Any("error", err))
			}
		}
	}
}

// FlushLastUsed writes every last-use time kept in memory since the previous
// flush to the store, in one transaction.
func (s *Service) FlushLastUsed(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	begin := s.now()
	pending := s.index.unflushed()
	if len(pending) == 0 {
		s.lastFlush.Store(begin.UnixNano())
		return nil
	}
	used := make(map[string]time.Time, len(pending))
	for _, p := range pending {
		used[p.id] = time.Unix(0, p.at).UTC()
	}
	if err := s.store.TouchLastUsed(ctx, used); err != nil {
		return fmt.Errorf("flush %d last-used times: %w", len(used), err)
	}
	for _, p := range pending {
		for {
			cur := p.usage.flushed.Load()
			if cur >= p.at || p.usage.flushed.CompareAndSwap(cur, p.at) {
				break
			}
		}
	}
	s.lastFlush.Store(begin.UnixNano())
	return nil
}

// Bootstrap prepares an empty store on first start: a root admin token (full
// access, unlimited), whose secret it returns, and the API tokens "Full
// Access" and "Read Only", whose secrets are discarded (regenerate them to
// use them). On a store bootstrapped before it returns "" and does nothing,
// even if every token has been deleted since.
func (s *Service) Bootstrap(ctx context.Context) (rootSecret string, err error) {
	now := s.now().UTC()
	specs := []struct {
		name, description string
		kind              storage.Kind
		typ               storage.Type
	}{
		{"Root", "Created at first start: full access to tokend's own API.", storage.KindAdmin, storage.TypeFullAccess},
		{"Full Access", "Created at first start. Regenerate it to get its secret.", storage.KindAPI, storage.TypeFullAccess},
		{"Read Only", "Created at first start. Regenerate it to get its secret.", storage.KindAPI, storage.TypeReadOnly},
	}
	tokens := make([]*storage.Token, len(specs))
	for i, sp := range specs {
		t, secret, err := s.newToken(sp.kind, now)
		if err != nil {
			return "", err
		}
		t.Name, t.Description, t.Type = sp.name, sp.description, sp.typ
		tokens[i] = t
		if i == 0 {
			rootSecret = secret
		}
	}
	ev := auditEvent(nil, storage.AuditBootstrap, now)
	for _, t := range tokens {
		ev.Fields = append(ev.Fields, t.Name)
	}
	created, err := s.store.Bootstrap(ctx, tokens, ev)
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if !created {
		return "", nil
	}
	return rootSecret, nil
}

// newToken returns a token record with a fresh id and secret, and the secret.
func (s *Service) newToken(kind storage.Kind, now time.Time) (*storage.Token, string, error) {
	id, err := newID()
	if err != nil {
		return nil, "", err
	}
	t := &storage.Token{ID: id, Kind: kind, CreateTime: now, UpdateTime: now}
	secret, err := s.setSecret(t)
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// setSecret gives t a new secret and returns it.
func (s *Service) setSecret(t *storage.Token) (string, error) {
	secret, err := s.secrets.generate(t.Kind)
	if err != nil {
		return "", err
	}
	h := s.hasher.sum(secret)
	t.SecretHash = h[:]
	t.SecretHint = hint(secret)
	t.HashKeyID = s.hasher.keyIDs[0]
	return secret, nil
}
