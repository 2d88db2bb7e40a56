package service

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// countingStore is a real store that counts the calls the service makes.
type countingStore struct {
	storage.Store

	mu    sync.Mutex
	calls map[string]int
}

func (c *countingStore) count(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[method]++
}

// take returns the calls counted since the previous take.
func (c *countingStore) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	if calls == nil {
		calls = map[string]int{}
	}
	return calls
}

func (c *countingStore) GetToken(ctx context.Context, id string) (*storage.Token, error) {
	c.count("GetToken")
	return c.Store.GetToken(ctx, id)
}

func (c *countingStore) ListTokens(ctx context.Context, q storage.ListQuery) (*storage.ListPage, error) {
	c.count("ListTokens")
	return c.Store.ListTokens(ctx, q)
}

func (c *countingStore) ListActions(ctx context.Context) ([]storage.Action, error) {
	c.count("ListActions")
	return c.Store.ListActions(ctx)
}

func (c *countingStore) CreateToken(ctx context.Context, t *storage.Token, audit *storage.AuditEvent) error {
	c.count("CreateToken")
	return c.Store.CreateToken(ctx, t, audit)
}

func (c *countingStore) UpdateToken(ctx context.Context, id string, modify func(*storage.Token) error, audit *storage.AuditEvent) (*storage.Token, error) {
	c.count("UpdateToken")
	return c.Store.UpdateToken(ctx, id, modify, audit)
}

func (c *countingStore) DeleteToken(ctx context.Context, id string, check func(*storage.Token) error, audit *storage.AuditEvent) error {
	c.count("DeleteToken")
	return c.Store.DeleteToken(ctx, id, check, audit)
}

func (c *countingStore) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	c.count("TouchLastUsed")
	return c.Store.TouchLastUsed(ctx, used)
}

func (c *countingStore) RegisterActions(ctx context.Context, actions []storage.Action, max int, audit *storage.AuditEvent) error {
	c.count("RegisterActions")
	return c.Store.RegisterActions(ctx, actions, max, audit)
}

func (c *countingStore) Bootstrap(ctx context.Context, tokens []*storage.Token, audit *storage.AuditEvent) (bool, error) {
	c.count("Bootstrap")
	return c.Store.Bootstrap(ctx, tokens, audit)
}

// countedService is a bootstrapped Service over a counting bbolt store.
type countedService struct {
	svc   *Service
	store *countingStore
	clock *testkit.Clock
	root  string
}

func newCountedService(t *testing.T) *countedService {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "tokend.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: db}
	clock := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	svc, err := New(context.Background(), Config{Store: cs, HashKeys: [][]byte{key}, Now: clock.Now})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(context.Background()); err != nil {
			t.Errorf("close service: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	root, err := svc.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &countedService{svc: svc, store: cs, clock: clock, root: root}
}

// as returns an incoming context with secret as the credential.
func (c *countedService) as(secret string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret))
}

func (c *countedService) create(t *testing.T, tok *tokendv1.Token) (*tokendv1.Token, string) {
	t.Helper()
	resp, err := c.svc.CreateToken(c.as(c.root), &tokendv1.CreateTokenRequest{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken(), resp.GetSecret()
}

// TestIntrospectWithoutStore: introspection (and the authentication of its
// caller) reads memory only, whatever the string presented: malformed
// strings are refused by their format, the rest by the in-memory index.
func TestIntrospectWithoutStore(t *testing.T) {
	c := newCountedService(t)
	_, active := c.create(t, &tokendv1.Token{Name: "active", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	deleted, deletedSecret := c.create(t, &tokendv1.Token{Name: "deleted"})
	if _, err := c.svc.DeleteToken(c.as(c.root), &tokendv1.DeleteTokenRequest{Id: deleted.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, expiring := c.create(t, &tokendv1.Token{Name: "expiring", Lifespan: durationpb.New(7 * 24 * time.Hour)})
	c.clock.Advance(8 * 24 * time.Hour)
	unknown, err := c.svc.secrets.generate(storage.KindAPI)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(active)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}

	cases := []struct {
		name   string
		secret string
		want   tokendv1.InactiveReason
		active bool
	}{
		{"Active", active, 0, true},
		{"Empty", "", tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED, false},
		{"WrongPrefix", "abc_" + active[4:], tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED, false},
		{"WrongLength", active + "0", tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED, false},
		{"BadAlphabet", active[:10] + "!" + active[11:], tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED, false},
		{"BadChecksum", string(flipped), tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED, false},
		{"Unknown", unknown, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND, false},
		{"Deleted", deletedSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND, false},
		{"AdminToken", c.root, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND, false},
		{"Expired", expiring, tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED, false},
	}
	c.store.take()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.svc.IntrospectToken(c.as(c.root), &tokendv1.IntrospectTokenRequest{Token: tc.secret, Actions: []string{"x.find"}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetActive() != tc.active || resp.GetInactiveReason() != tc.want {
				t.Errorf("active %v, reason %v; want %v, %v", resp.GetActive(), resp.GetInactiveReason(), tc.active, tc.want)
			}
			if calls := c.store.take(); len(calls) != 0 {
				t.Errorf("IntrospectToken called the store: %v", calls)
			}
		})
	}
}

// TestIntrospectWritesNothing: 100 introspections over 100 seconds make no
// store call at all; one flush then writes their last use in one call.
func TestIntrospectWritesNothing(t *testing.T) {
	c := newCountedService(t)
	tok, secret := c.create(t, &tokendv1.Token{Name: "hot"})
	c.store.take()
	var last time.Time
	for i := 0; i < 100; i++ {
		last = c.clock.Advance(time.Second)
		resp, err := c.svc.IntrospectToken(c.as(c.root), &tokendv1.IntrospectTokenRequest{Token: secret})
		if err != nil || !resp.GetActive() {
			t.Fatalf("introspection %d: %v, active %v", i, err, resp.GetActive())
		}
	}
	if calls := c.store.take(); len(calls) != 0 {
		t.Fatalf("100 introspections called the store: %v", calls)
	}
	if err := c.svc.FlushLastUsed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := c.store.take(); calls["TouchLastUsed"] != 1 || len(calls) != 1 {
		t.Errorf("FlushLastUsed made %v, want one TouchLastUsed", calls)
	}
	stored, err := c.store.Store.GetToken(context.Background(), tok.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if !stored.LastUsedTime.Equal(last) {
		t.Errorf("stored last use %v, want %v", stored.LastUsedTime, last)
	}
	// Nothing new to flush: no write.
	if err := c.svc.FlushLastUsed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := c.store.take(); len(calls) != 0 {
		t.Errorf("a flush with nothing pending called the store: %v", calls)
	}
}

// TestIndexNeverMissesALiveSecret: while a token is being updated (same
// secret, new metadata) a concurrent lookup of its secret must always find
// it. A gap between removing the old version and adding the new one would
// answer NOT_FOUND for a valid token.
func TestIndexNeverMissesALiveSecret(t *testing.T) {
	ix := newIndex()
	var hash secretHash
	hash[0] = 7
	tok := &storage.Token{ID: "t1", Name: "v0", Kind: storage.KindAPI, Type: storage.TypeReadOnly, SecretHash: hash[:]}
	ix.apply(storage.Change{ID: tok.ID, Token: tok})

	var misses, lookups atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hash
			for {
				select {
				case <-stop:
					return
				default:
				}
				lookups.Add(1)
				if ix.lookup(&h) == nil {
					misses.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		next := tok.Clone()
		next.Name = fmt.Sprint("v", i)
		ix.apply(storage.Change{ID: next.ID, Token: next})
	}
	close(stop)
	wg.Wait()
	if n := misses.Load(); n > 0 {
		t.Errorf("%d of %d lookups of a live secret found nothing while its token was updated", n, lookups.Load())
	}
}

// TestIntrospectDuringUpdates: a valid token stays active for introspection
// while an admin edits it (the index must never drop it in between).
func TestIntrospectDuringUpdates(t *testing.T) {
	c := newCountedService(t)
	tok, secret := c.create(t, &tokendv1.Token{Name: "busy"})
	ctx := c.as(c.root)

	var inactive, calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &tokendv1.IntrospectTokenRequest{Token: secret}
			for {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				resp, err := c.svc.IntrospectToken(ctx, req)
				if err != nil {
					t.Error(err)
					return
				}
				if !resp.GetActive() {
					inactive.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if _, err := c.svc.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
			Token:      &tokendv1.Token{Id: tok.GetId(), Description: fmt.Sprint("edit ", i)},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if n := inactive.Load(); n > 0 {
		t.Errorf("%d of %d introspections of a valid token answered inactive while it was being edited", n, calls.Load())
	}
}

// racingStore lets a test commit a change right after the service has read
// a token, as a concurrent request on another connection could.
type racingStore struct {
	storage.Store

	mu    sync.Mutex
	after func(id string) // run once, after the next GetToken
}

func (r *racingStore) GetToken(ctx context.Context, id string) (*storage.Token, error) {
	t, err := r.Store.GetToken(ctx, id)
	r.mu.Lock()
	f := r.after
	r.after = nil
	r.mu.Unlock()
	if f != nil {
		f(id)
	}
	return t, err
}

func (r *racingStore) arm(f func(id string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.after = f
}

// TestCeilingHoldsUnderConcurrentEdits: the ceiling must hold for the token
// as it is when the change commits, not as it was read before. Here an
// admin token is raised to full access (as root could do concurrently)
// between the service's read of it and the write; a limited admin must then
// be refused.
func TestCeilingHoldsUnderConcurrentEdits(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "tokend.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := &racingStore{Store: db}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	svc, err := New(context.Background(), Config{Store: rs, HashKeys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close(context.Background())
		db.Close()
	})
	root, err := svc.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	as := func(secret string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret))
	}
	create := func(t *testing.T, perms ...string) (*tokendv1.Token, string) {
		t.Helper()
		resp, err := svc.CreateToken(as(root), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
			Name: fmt.Sprint("admin ", len(perms), " ", time.Now().UnixNano()), Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
			Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: perms,
		}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetToken(), resp.GetSecret()
	}
	_, manager := create(t, ActionTokenCreate, ActionTokenFind, ActionTokenFindOne, ActionTokenUpdate, ActionTokenDelete, ActionTokenRegenerate)
	raiseToFullAccess := func(id string) {
		if _, err := db.UpdateToken(context.Background(), id, func(t *storage.Token) error {
			t.Type, t.Permissions = storage.TypeFullAccess, nil
			return nil
		}, nil); err != nil {
			panic(err)
		}
	}

	cases := []struct {
		name string
		call func(id string) error
	}{
		{"Delete", func(id string) error {
			_, err := svc.DeleteToken(as(manager), &tokendv1.DeleteTokenRequest{Id: id})
			return err
		}},
		{"UpdateLowersType", func(id string) error {
			_, err := svc.UpdateToken(as(manager), &tokendv1.UpdateTokenRequest{
				Token:      &tokendv1.Token{Id: id, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{ActionTokenFind}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"type", "permissions"}},
			})
			return err
		}},
		{"UpdateDescription", func(id string) error {
			_, err := svc.UpdateToken(as(manager), &tokendv1.UpdateTokenRequest{
				Token:      &tokendv1.Token{Id: id, Description: "mine"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
			})
			return err
		}},
		{"Regenerate", func(id string) error {
			_, err := svc.RegenerateToken(as(manager), &tokendv1.RegenerateTokenRequest{Id: id})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target, _ := create(t, ActionTokenFind)
			rs.arm(raiseToFullAccess)
			err := c.call(target.GetId())
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("a limited admin acting on an admin token raised to full access meanwhile: got %v, want PermissionDenied", err)
			}
			got, gerr := db.GetToken(context.Background(), target.GetId())
			if gerr != nil {
				t.Fatalf("the full-access token is gone: %v", gerr)
			}
			if got.Type != storage.TypeFullAccess {
				t.Errorf("the full-access token was lowered to type %v", got.Type)
			}
		})
	}
}
