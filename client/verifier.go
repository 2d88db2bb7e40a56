package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// Errors of Verify. Both mean the secret could not be judged: fail closed.
var (
	// ErrUnavailable: tokend could not be asked (unreachable, refusing the
	// verifier's credential, too slow) and no usable answer was cached.
	// The error wraps the call's gRPC status error.
	ErrUnavailable = errors.New("client: tokend unavailable")
	// ErrInvalidAction: an action id does not read <subject>.<verb>
	// (letters, digits, '_', ':', '-', at most 200 characters): a bug in
	// the caller, which tokend would refuse as well.
	ErrInvalidAction = errors.New("client: invalid action id")
	// ErrClosed: the Verifier has been closed.
	ErrClosed = errors.New("client: verifier closed")
)

// Result is what a Verifier learnt about a secret.
type Result struct {
	// Active tells whether the secret is a valid API token right now.
	Active bool
	// InactiveReason says why not, when Active is false: malformed, not
	// found (also deleted, regenerated away, an admin token) or expired.
	InactiveReason tokendv1.InactiveReason
	// Allowed is true when Active and every action asked about is
	// permitted; DeniedActions lists the refused ones.
	Allowed       bool
	DeniedActions []string
	// What the token is, when Active.
	TokenID    string
	Name       string
	Kind       tokendv1.TokenKind
	Type       tokendv1.TokenType
	ExpireTime time.Time // zero: never
	// PreviousSecret is true when the secret is the one a rotation
	// replaced, still in its grace period: its holder should switch.
	PreviousSecret bool
}

// Defaults of the VerifierOptions.
const (
	DefaultMaxAge           = 5 * time.Minute
	DefaultStaleAge         = 30 * time.Second
	DefaultNegativeAge      = 5 * time.Second
	DefaultMaxEntries       = 100_000
	DefaultHeartbeatTimeout = 45 * time.Second
	DefaultCallTimeout      = 5 * time.Second
)

// VerifierOption configures NewVerifier.
type VerifierOption func(*Verifier)

// WithMaxAge bounds how long an answer is used while the watch is healthy
// (default 5 minutes). Revocations reach the cache through the watch, so
// this only bounds how long a missed event could matter.
func WithMaxAge(d time.Duration) VerifierOption { return func(v *Verifier) { v.maxAge = d } }

// WithStaleAge bounds how long an answer is used once the watch is down
// (default 30 seconds), counted from the later of when the answer was
// fetched and the watch's last message: past it, revocations might have
// been missed, and Verify asks tokend again (and fails if it cannot).
func WithStaleAge(d time.Duration) VerifierOption { return func(v *Verifier) { v.staleAge = d } }

// WithNegativeAge is how long "not found" and "expired" answers are kept
// (default 5 seconds). They name no token, so no event can evict them:
// keep this short (an expired token's lifespan can be renewed).
func WithNegativeAge(d time.Duration) VerifierOption { return func(v *Verifier) { v.negativeAge = d } }

// WithMaxEntries bounds the number of cached answers (default 100,000);
// when full, an arbitrary answer makes room.
func WithMaxEntries(n int) VerifierOption { return func(v *Verifier) { v.maxEntries = n } }

// WithPrefix is the prefix of API token secrets, as configured on tokend
// (default "tkd"). Secrets without it are malformed and never sent.
func WithPrefix(p string) VerifierOption { return func(v *Verifier) { v.prefix = p } }

// WithHeartbeatTimeout is how long the watch may stay silent before it is
// considered broken and reconnected (default 45 seconds); keep it above the
// server's -watch-heartbeat (15 seconds by default).
func WithHeartbeatTimeout(d time.Duration) VerifierOption {
	return func(v *Verifier) { v.heartbeatTimeout = d }
}

// WithCallTimeout bounds each Introspect call (default 5 seconds).
func WithCallTimeout(d time.Duration) VerifierOption { return func(v *Verifier) { v.callTimeout = d } }

// Verifier answers whether a secret is an active API token allowed some
// actions, from a cache kept correct by tokend's watch stream: a cached
// answer costs no call, and a deleted, regenerated, retyped or narrowed
// token is evicted as soon as the event arrives. Concurrent verifies of the
// same uncached secret share one call. Answers are never used past the
// token's expiry (nor past a previous secret's grace period).
//
// The cache holds the secrets presented to it, in memory, as the backend's
// requests do; it never writes them anywhere.
//
// A Verifier is safe for concurrent use. Close stops its watch.
type Verifier struct {
	c                                                            *Client
	prefix                                                       string
	maxAge, staleAge, negativeAge, heartbeatTimeout, callTimeout time.Duration
	maxEntries                                                   int
	now                                                          func() time.Time

	mu      sync.RWMutex
	entries map[string]*cached  // by secret
	byID    map[string][]string // token id → its cached secrets
	gen     uint64              // bumped by every eviction: answers fetched across one are not cached

	flightMu sync.Mutex
	flights  map[string]*flight

	healthy  atomic.Bool  // the watch is connected and has spoken
	lastSeen atomic.Int64 // unix nanoseconds of the watch's last message

	stop context.CancelFunc
	done chan struct{}
}

// cached is one answer. It is immutable once stored.
type cached struct {
	res     Result // without Allowed and DeniedActions
	custom  map[string]struct{}
	fetched int64 // unix nanoseconds
	until   int64 // not used from then on
}

// flight is one Introspect call shared by concurrent verifies.
type flight struct {
	done  chan struct{}
	entry *cached
	err   error
}

// NewVerifier returns a Verifier asking tokend through c, whose credential
// must hold tokend.token.introspect. It starts watching at once, in the
// background, and reconnects on its own. It returns an error only for
// invalid options.
func NewVerifier(c *Client, opts ...VerifierOption) (*Verifier, error) {
	v := &Verifier{
		c: c, prefix: "tkd",
		maxAge: DefaultMaxAge, staleAge: DefaultStaleAge, negativeAge: DefaultNegativeAge,
		maxEntries: DefaultMaxEntries, heartbeatTimeout: DefaultHeartbeatTimeout, callTimeout: DefaultCallTimeout,
		now:     time.Now,
		entries: make(map[string]*cached), byID: make(map[string][]string),
		flights: make(map[string]*flight), done: make(chan struct{}),
	}
	for _, o := range opts {
		o(v)
	}
	switch {
	case c == nil:
		return nil, errors.New("client: NewVerifier needs a Client")
	case v.prefix == "":
		return nil, errors.New("client: empty token prefix")
	case v.maxAge <= 0 || v.staleAge < 0 || v.negativeAge < 0 || v.heartbeatTimeout <= 0 || v.callTimeout <= 0:
		return nil, errors.New("client: verifier durations must be positive (stale and negative ages may be zero)")
	case v.maxEntries <= 0:
		return nil, errors.New("client: WithMaxEntries must be positive")
	}
	ctx, stop := context.WithCancel(context.Background())
	v.stop = stop
	go v.watch(ctx)
	return v, nil
}

// Healthy reports whether the watch is connected and has heard from tokend
// since: answers are then kept up to WithMaxAge, otherwise up to
// WithStaleAge. A backend can report it in its readiness check.
func (v *Verifier) Healthy() bool { return v.healthy.Load() }

// Close stops the watch and forgets every answer. It does not close the
// Client. Afterwards Verify fails with ErrClosed for a well-formed secret
// (a malformed one is still answered inactive, as it needs no call).
func (v *Verifier) Close() error {
	v.stop()
	<-v.done
	v.dropAll()
	return nil
}

// Verify tells whether secret is an active API token allowed every one of
// actions. A malformed secret is answered inactive at once, without a call;
// a usable cached answer without a call; otherwise tokend is asked (one
// call for all concurrent verifies of the secret). An inactive secret is
// not an error. Returns ErrInvalidAction for an action id tokend would
// refuse, ErrUnavailable when tokend cannot be asked and nothing usable is
// cached, ErrClosed after Close, or ctx's error: fail closed on any error.
func (v *Verifier) Verify(ctx context.Context, secret string, actions ...string) (Result, error) {
	for _, a := range actions {
		if !validAction(a) {
			return Result{}, fmt.Errorf("%w: %q", ErrInvalidAction, a)
		}
	}
	now := v.now().UnixNano()
	v.mu.RLock()
	e := v.entries[secret]
	v.mu.RUnlock()
	if e != nil && v.usable(e, now) {
		return e.result(actions), nil
	}
	if !wellFormed(v.prefix, secret) {
		return Result{InactiveReason: tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED}, nil
	}
	e, err := v.fetch(ctx, secret)
	if err != nil {
		return Result{}, err
	}
	return e.result(actions), nil
}

// usable reports whether a cached answer may be used at now.
func (v *Verifier) usable(e *cached, now int64) bool {
	if now >= e.until {
		return false
	}
	if v.healthy.Load() {
		return true
	}
	return now-max(e.fetched, v.lastSeen.Load()) < int64(v.staleAge)
}

// result is the cached answer for these actions.
func (e *cached) result(actions []string) Result {
	r := e.res
	if !r.Active {
		return r
	}
	r.Allowed = true
	for _, a := range actions {
		if !e.allows(a) {
			r.Allowed = false
			r.DeniedActions = append(r.DeniedActions, a)
		}
	}
	return r
}

// allows applies the token type's rule, as tokend does: read-only allows
// the verbs find and findOne, full-access everything, custom its list.
func (e *cached) allows(action string) bool {
	switch e.res.Type {
	case tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS:
		return true
	case tokendv1.TokenType_TOKEN_TYPE_READ_ONLY:
		vb := verb(action)
		return vb == "find" || vb == "findOne"
	case tokendv1.TokenType_TOKEN_TYPE_CUSTOM:
		_, ok := e.custom[action]
		return ok
	}
	return false
}

// fetch asks tokend about secret, sharing the call with concurrent fetches
// of the same secret, and caches the answer unless an event arrived while
// it was in flight (the answer might predate it).
func (v *Verifier) fetch(ctx context.Context, secret string) (*cached, error) {
	v.flightMu.Lock()
	f := v.flights[secret]
	if f == nil {
		// A flight may have landed between the caller's cache miss and
		// now: look again before calling.
		v.mu.RLock()
		e := v.entries[secret]
		v.mu.RUnlock()
		if e != nil && v.usable(e, v.now().UnixNano()) {
			v.flightMu.Unlock()
			return e, nil
		}
		f = &flight{done: make(chan struct{})}
		v.flights[secret] = f
		v.flightMu.Unlock()
		// The first caller makes the call, detached from its own
		// cancellation so that giving up does not fail the others (it
		// waits at most the call timeout).
		v.fly(context.WithoutCancel(ctx), secret, f)
		return f.entry, f.err
	}
	v.flightMu.Unlock()
	select {
	case <-f.done:
		return f.entry, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fly makes one shared call and publishes its outcome to the waiters.
func (v *Verifier) fly(ctx context.Context, secret string, f *flight) {
	defer func() {
		v.flightMu.Lock()
		delete(v.flights, secret)
		v.flightMu.Unlock()
		close(f.done)
	}()
	select {
	case <-v.done:
		f.err = ErrClosed
		return
	default:
	}
	v.mu.RLock()
	gen := v.gen
	v.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, v.callTimeout)
	defer cancel()
	resp, err := v.c.Introspect(ctx, secret)
	if err != nil {
		f.err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		return
	}
	f.entry = v.newCached(resp)
	v.store(secret, f.entry, gen)
}

func (v *Verifier) newCached(resp *tokendv1.IntrospectTokenResponse) *cached {
	now := v.now().UnixNano()
	e := &cached{fetched: now}
	if !resp.GetActive() {
		e.res.InactiveReason = resp.GetInactiveReason()
		if e.res.InactiveReason == tokendv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED {
			e.res.InactiveReason = tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND
		}
		e.until = now + int64(v.negativeAge)
		return e
	}
	t := resp.GetToken()
	e.res = Result{
		Active: true, TokenID: t.GetId(), Name: t.GetName(), Kind: t.GetKind(), Type: t.GetType(),
		PreviousSecret: resp.GetPreviousSecret(),
	}
	e.until = now + int64(v.maxAge)
	if t.GetExpireTime() != nil {
		e.res.ExpireTime = t.GetExpireTime().AsTime()
		e.until = min(e.until, e.res.ExpireTime.UnixNano())
	}
	if e.res.PreviousSecret && t.GetPreviousSecretExpireTime() != nil {
		e.until = min(e.until, t.GetPreviousSecretExpireTime().AsTime().UnixNano())
	}
	if e.res.Type == tokendv1.TokenType_TOKEN_TYPE_CUSTOM {
		e.custom = make(map[string]struct{}, len(t.GetPermissions()))
		for _, p := range t.GetPermissions() {
			e.custom[p] = struct{}{}
		}
	}
	return e
}

// store caches an answer fetched when the eviction generation was gen.
func (v *Verifier) store(secret string, e *cached, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen != gen {
		return // an event arrived meanwhile: the answer may be out of date
	}
	if old := v.entries[secret]; old != nil {
		v.forget(secret, old)
	} else if len(v.entries) >= v.maxEntries {
		for s, victim := range v.entries {
			v.forget(s, victim)
			break
		}
	}
	v.entries[secret] = e
	if id := e.res.TokenID; id != "" {
		v.byID[id] = append(v.byID[id], secret)
	}
}

// forget removes one cached answer. v.mu is held.
func (v *Verifier) forget(secret string, e *cached) {
	delete(v.entries, secret)
	id := e.res.TokenID
	if id == "" {
		return
	}
	secrets := v.byID[id]
	for i, s := range secrets {
		if s == secret {
			secrets = append(secrets[:i], secrets[i+1:]...)
			break
		}
	}
	if len(secrets) == 0 {
		delete(v.byID, id)
	} else {
		v.byID[id] = secrets
	}
}

// evict forgets every answer about token id.
func (v *Verifier) evict(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	for _, s := range v.byID[id] {
		delete(v.entries, s)
	}
	delete(v.byID, id)
}

// dropAll forgets every answer.
func (v *Verifier) dropAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	clear(v.entries)
	clear(v.byID)
}

// Watch reconnection backoff: doubled after each failed attempt.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// watch follows tokend's event stream until ctx is done, resuming after
// each break where the last one stopped.
func (v *Verifier) watch(ctx context.Context) {
	defer close(v.done)
	var resume string
	backoff := minBackoff
	for ctx.Err() == nil {
		spoke := v.watchOnce(ctx, &resume)
		v.healthy.Store(false)
		if spoke {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// watchOnce runs one watch stream until it breaks, and reports whether it
// received anything.
func (v *Verifier) watchOnce(ctx context.Context, resume *string) (spoke bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := v.c.Watch(ctx, *resume)
	if err != nil {
		return false
	}
	// A silent stream (a dead peer behind a live connection) is cut and
	// reconnected.
	silence := time.AfterFunc(v.heartbeatTimeout, cancel)
	defer silence.Stop()
	fresh := *resume == ""
	for {
		ev, err := stream.Recv()
		if err != nil {
			return spoke
		}
		silence.Reset(v.heartbeatTimeout)
		if fresh && !spoke {
			// Answers cached before the watch began are not covered by
			// its events.
			v.dropAll()
		}
		spoke = true
		v.apply(ev)
		*resume = ev.GetResumeToken()
		v.lastSeen.Store(v.now().UnixNano())
		v.healthy.Store(true)
	}
}

// apply acts on one event.
func (v *Verifier) apply(ev *tokendv1.WatchTokensResponse) {
	switch ev.GetType() {
	case tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED,
		tokendv1.TokenEventType_TOKEN_EVENT_TYPE_SECRET_CHANGED,
		tokendv1.TokenEventType_TOKEN_EVENT_TYPE_DELETED,
		tokendv1.TokenEventType_TOKEN_EVENT_TYPE_EXPIRED:
		v.evict(ev.GetTokenId())
	case tokendv1.TokenEventType_TOKEN_EVENT_TYPE_RESET:
		v.dropAll()
	}
}
