package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: no token with that id.
	ErrNotFound = errors.New("storage: not found")
	// ErrNameTaken: another token already has that name (compared by NameKey).
	ErrNameTaken = errors.New("storage: name already taken")
	// ErrHashTaken: another token already has that secret hash. With 256-bit
	// secrets this only happens through a bug, never by chance.
	ErrHashTaken = errors.New("storage: secret hash already in use")
	// ErrIDTaken: a token with that id already exists.
	ErrIDTaken = errors.New("storage: id already in use")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("storage: closed")
	// ErrCorrupt: a stored record could not be decoded, or the store's
	// file is damaged where a call read it.
	ErrCorrupt = errors.New("storage: corrupt record")
	// ErrBadCursor: a ListQuery.After or AuditQuery.After cursor was not
	// issued by a previous page of the same kind of listing.
	ErrBadCursor = errors.New("storage: invalid page cursor")
	// ErrUnavailable: a networked store could not be reached, or did not
	// answer in time. Nothing was changed by a write that returns it unless
	// the write is seen committed later (the caller may retry: every write
	// either refuses a duplicate or is idempotent).
	ErrUnavailable = errors.New("storage: store unavailable")
	// ErrKeyCheckMismatch: RecordKeyCheck found a different check already
	// recorded under the same key id.
	ErrKeyCheckMismatch = errors.New("storage: a different key check is recorded under this key id")
	// ErrLastOwner: the write would delete the last owner (see
	// Token.IsOwner), or make it no longer one. Every backend refuses it
	// inside the write's transaction, so replicas sharing a store cannot
	// together remove every owner.
	ErrLastOwner = errors.New("storage: the last owner cannot be removed")
	// ErrCatalogFull: RegisterActions would grow the action catalog past
	// the bound it was given. The error is a *CatalogFullError.
	ErrCatalogFull = errors.New("storage: the action catalog is full")
)

// CatalogFullError is the error RegisterActions returns when the catalog
// has no room for the new actions; it matches ErrCatalogFull.
type CatalogFullError struct {
	Held  int // actions in the catalog
	Max   int // the bound RegisterActions was given
	Added int // actions the refused call would have added
}

func (e *CatalogFullError) Error() string {
	return fmt.Sprintf("%v: it holds %d actions of at most %d, and the call would add %d", ErrCatalogFull, e.Held, e.Max, e.Added)
}

// Unwrap makes errors.Is(err, ErrCatalogFull) hold.
func (e *CatalogFullError) Unwrap() error { return ErrCatalogFull }

// KeyCheck lets a store recognise the hash keys its secrets were hashed under
// without ever holding a key: KeyID is a short id derived from the key, Check a
// keyed digest of a fixed label under it.
type KeyCheck struct {
	KeyID string
	Check []byte
}

// Kind says whom a token is for.
type Kind uint8

const (
	KindAPI   Kind = 1 // checked by backends through Introspect
	KindAdmin Kind = 2 // credentials for tokend's own API
)

// Type says which actions a token allows.
type Type uint8

const (
	TypeReadOnly   Type = 1 // actions whose verb is find or findOne
	TypeFullAccess Type = 2 // every action of its kind
	TypeCustom     Type = 3 // exactly Token.Permissions
)

// Token is the stored record of an API or admin token. It never holds the
// secret, only SecretHash, a keyed hash computed by the service.
//
// Values passed to and returned from a Store are owned by the caller: a Store
// copies what it keeps and returns fresh values.
type Token struct {
	ID          string
	Name        string // unique under NameKey
	Description string
	Kind        Kind
	Type        Type
	Permissions []string      // custom type only
	Lifespan    time.Duration // 0 = unlimited
	ExpireTime  time.Time     // zero = never
	CreateTime  time.Time
	UpdateTime  time.Time
	// LastUsedTime is the last flushed use; the service holds newer ones in memory.
	LastUsedTime time.Time
	SecretHash   []byte // keyed hash of the current secret; unique across tokens
	SecretHint   string // prefix and last characters of the secret, safe to show
	// PreviousSecretHash is the keyed hash of the secret replaced by the
	// last regeneration, kept while its grace period runs (until
	// PreviousExpireTime); nil or empty when there is none. It is indexed
	// like SecretHash and unique across both (a token whose two hashes are
	// equal is refused with ErrHashTaken).
	PreviousSecretHash []byte
	PreviousExpireTime time.Time
	// HashKeyID is the KeyCheck.KeyID of the hash key SecretHash (and
	// PreviousSecretHash) were computed under; "" for tokens written before
	// key ids were recorded.
	HashKeyID string
}

// Clone returns a deep copy of t.
func (t *Token) Clone() *Token {
	c := *t
	c.Permissions = append([]string(nil), t.Permissions...)
	c.SecretHash = append([]byte(nil), t.SecretHash...)
	if t.PreviousSecretHash != nil {
		c.PreviousSecretHash = append([]byte(nil), t.PreviousSecretHash...)
	}
	return &c
}

// Action is an entry of the API action catalog, registered by the backend that owns it.
type Action struct {
	ID           string
	Description  string
	RegisterTime time.Time // first registration
}

// AuditOperation is the kind of change an audit event records.
type AuditOperation uint8

const (
	AuditBootstrap       AuditOperation = 1
	AuditCreateToken     AuditOperation = 2
	AuditUpdateToken     AuditOperation = 3
	AuditDeleteToken     AuditOperation = 4
	AuditRegenerateToken AuditOperation = 5
	AuditRegisterActions AuditOperation = 6
)

// AuditEvent records one change. A Store writes it in the same transaction
// as the change it describes, so the trail has an entry for every committed
// change and none for a failed one. It never holds a secret or a hash.
type AuditEvent struct {
	// ID is assigned by the Store when it records the event: unique, and
	// ordering events by ID orders them by commit.
	ID         string
	Time       time.Time
	CallerID   string // the admin token that made the change; "" at bootstrap
	CallerName string
	Operation  AuditOperation
	TargetID   string // the token changed; "" for action registrations
	TargetName string
	Fields     []string // fields changed, or the action ids registered
}

// AuditQuery selects a page of audit events, newest first.
type AuditQuery struct {
	After    string // cursor from the previous page's AuditPage.Next; "" for the first
	Limit    int    // page size; must be positive
	TargetID string // only events about this token; "" for all
}

// AuditPage is one page of audit events.
type AuditPage struct {
	Events []*AuditEvent
	Next   string // cursor of the next page; empty on the last page
}

// Order names a listing order.
type Order uint8

const (
	OrderByName           Order = iota // NameKey of the name, ascending
	OrderByCreateTimeDesc              // newest first
)

// ListQuery selects a page of tokens.
type ListQuery struct {
	Order Order
	// After is the opaque cursor returned as ListPage.Next by the previous
	// page of the same query; empty for the first page.
	After string
	// Limit is the page size; it must be positive.
	Limit int
	// Filters; the zero value of each matches every token.
	Kind         Kind
	Type         Type
	ExpireBefore time.Time // only tokens that expire strictly before this time (never-expiring ones never match)
}

// ListPage is one page of a listing.
type ListPage struct {
	Tokens []*Token
	Next   string // cursor of the next page; empty on the last page
}

// Change is one committed change to a token, as delivered by Store.Subscribe.
type Change struct {
	// Token is the token as committed; nil when the token was deleted.
	Token *Token
	// ID is the id of the changed token (set for deletes too).
	ID string
	// Reset, when true, replaces everything the subscriber holds: Tokens
	// is then every stored token and ID and Token are unset. A subscriber
	// applies it as one step, dropping every token it holds that Tokens
	// lacks, so that no token present before and after is ever missing in
	// between. A distributed backend sends it when it can no longer
	// deliver the changes it missed one by one (its change history was
	// compacted while it was disconnected); a single-process backend never
	// does.
	Reset  bool
	Tokens []*Token
}

// Store persists tokens and the action catalog. Implementations are safe for
// concurrent use. Every acknowledged write is durable.
type Store interface {
	// Every write takes an optional audit event (nil for none), stored in
	// the write's transaction with its ID set; Time and the other fields
	// are the caller's. UpdateToken reads the event after modify returns,
	// so modify may fill it in.

	// CreateToken stores a new token, its name and its hash in one transaction.
	// It returns ErrNameTaken, ErrIDTaken or ErrHashTaken and stores nothing
	// when one of them is already in use.
	CreateToken(ctx context.Context, t *Token, audit *AuditEvent) error

	// GetToken returns the token with that id, or ErrNotFound.
	GetToken(ctx context.Context, id string) (*Token, error)

	// UpdateToken reads the token with that id, passes a copy to modify and
	// stores the result, all in one transaction, and returns what was stored.
	// modify may be called more than once (a distributed backend retries on
	// conflict), so it must only compute from its argument. If modify returns
	// an error nothing is stored and that error is returned as is. The ID and
	// CreateTime cannot be changed. Returns ErrNotFound, ErrNameTaken or
	// ErrHashTaken (nothing stored) when the new name or hash is in use, and
	// ErrLastOwner (nothing stored) when the token was an owner, is no longer
	// one, and no other owner exists when the write commits.
	UpdateToken(ctx context.Context, id string, modify func(*Token) error, audit *AuditEvent) (*Token, error)

	// DeleteToken removes the token, its name and its hashes in one
	// transaction. If check is not nil it is called in that transaction
	// with a copy of the token, and an error it returns is returned as is
	// with nothing deleted (the service re-checks its permission rules on
	// the token as it is at deletion). check may be called more than once.
	// Returns ErrNotFound if there is no such token.
	DeleteToken(ctx context.Context, id string, check func(*Token) error, audit *AuditEvent) error

	// ListTokens returns one page of tokens matching q.
	ListTokens(ctx context.Context, q ListQuery) (*ListPage, error)

	// TouchLastUsed records last-use times in one transaction: each token's
	// LastUsedTime becomes the later of its stored value and the given one.
	// Unknown ids (deleted since) are skipped. It publishes no Change: last-use
	// times are bookkeeping, not a change of the token.
	TouchLastUsed(ctx context.Context, used map[string]time.Time) error

	// Bootstrap stores tokens in one transaction if and only if the store has
	// never been bootstrapped, and marks it as bootstrapped. It reports whether
	// it did. Deleting every token afterwards does not make it bootstrap again.
	Bootstrap(ctx context.Context, tokens []*Token, audit *AuditEvent) (bool, error)

	// RegisterActions adds the actions to the catalog, or updates the
	// description of those already there (RegisterTime is kept). Idempotent.
	// The catalog never holds more than max actions: a call that would add
	// actions past it returns a *CatalogFullError (ErrCatalogFull), judged
	// against the catalog as it is when the call commits, so replicas
	// registering at once cannot together pass it. Actions already there
	// do not count as added.
	RegisterActions(ctx context.Context, actions []Action, max int, audit *AuditEvent) error

	// ListActions returns the whole catalog ordered by id.
	ListActions(ctx context.Context) ([]Action, error)

	// ListAuditEvents returns one page of audit events, newest first.
	// Returns ErrBadCursor for a cursor it did not issue.
	ListAuditEvents(ctx context.Context, q AuditQuery) (*AuditPage, error)

	// PruneAuditEvents deletes the events recorded before the given time and
	// returns how many it deleted.
	PruneAuditEvents(ctx context.Context, before time.Time) (int, error)

	// Subscribe calls apply with every stored token (as a Change with Token
	// set), then with every change committed afterwards, in commit order,
	// until ctx is done. It returns once the stored tokens have been replayed:
	// from then on a write acknowledged by this store has been applied before
	// the write returns, and a write by another replica (distributed
	// backends) as soon as it is seen. A distributed backend that lost
	// track of single changes delivers one Change with Reset set instead
	// (see Change). apply is never called concurrently with itself and must
	// not call back into the Store.
	Subscribe(ctx context.Context, apply func(Change)) error

	// KeyChecks returns the recorded key checks in the order they were
	// recorded; none for a store that never recorded one.
	KeyChecks(ctx context.Context) ([]KeyCheck, error)

	// RecordKeyCheck records c unless a check with its KeyID is already
	// recorded. Recording the same check again does nothing. Returns
	// ErrKeyCheckMismatch (nothing stored) if a different Check is recorded
	// under c.KeyID.
	RecordKeyCheck(ctx context.Context, c KeyCheck) error

	// Ping reports whether the store can serve reads and writes.
	Ping(ctx context.Context) error

	// Close releases the store. Further calls return ErrClosed.
	Close() error
}

// NameKey is the form under which a name is unique: two names with the same
// key cannot both be in use. It is the name under compatibility
// normalization (NFKC) and Unicode case folding, so names that only differ
// in case, in width ("ＲＯＯＴ") or in compatibility forms ("ﬁle") collide.
// Changing it changes which stored names collide: a store keyed by an older
// form must rebuild its name index (the bolt store does at Open) or refuse
// to open (the etcd store, by its schema version).
func NameKey(name string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(name)))
}

// FeedFreshness is implemented by stores whose change feed can fall behind
// the committed state (distributed backends, where another replica writes):
// a reader of the in-memory index uses it to refuse answers from an index
// that may miss a revocation. A single-process store, whose feed is applied
// before each write returns, does not implement it.
type FeedFreshness interface {
	// FeedConfirmedAt returns the last time the change feed was known to be
	// complete: every change committed before then has been delivered to
	// every subscriber. The zero time before the first Subscribe returns.
	// It is safe to call concurrently and cheap (an atomic load).
	FeedConfirmedAt() time.Time
}
