package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// faultStore is a real store that fails on demand: while a fault is
// injected, every write and Ping return it, and reads go through, as they
// do on a disk that has become read-only or full. UpdateToken and
// DeleteToken fail inside the real transaction, after their callback has
// run, so bbolt's rollback is exercised too.
type faultStore struct {
	storage.Store
	fault   atomic.Pointer[error]
	refused atomic.Int64 // writes refused so far
}

var _ storage.Store = (*faultStore)(nil)

// inject makes writes and Ping fail with err; nil clears the fault.
func (f *faultStore) inject(err error) {
	if err == nil {
		f.fault.Store(nil)
		return
	}
	f.fault.Store(&err)
}

// failure returns the injected fault for a write named op, or nil.
func (f *faultStore) failure(op string) error {
	p := f.fault.Load()
	if p == nil {
		return nil
	}
	f.refused.Add(1)
	return fmt.Errorf("%s: %w", op, *p)
}

func (f *faultStore) CreateToken(ctx context.Context, t *storage.Token, audit *storage.AuditEvent) error {
	if err := f.failure("create token"); err != nil {
		return err
	}
	return f.Store.CreateToken(ctx, t, audit)
}

func (f *faultStore) UpdateToken(ctx context.Context, id string, modify func(*storage.Token) error, audit *storage.AuditEvent) (*storage.Token, error) {
	return f.Store.UpdateToken(ctx, id, func(t *storage.Token) error {
		if err := modify(t); err != nil {
			return err
		}
		// Changed in the transaction, then the commit fails.
		return f.failure("update token")
	}, audit)
}

func (f *faultStore) DeleteToken(ctx context.Context, id string, check func(*storage.Token) error, audit *storage.AuditEvent) error {
	return f.Store.DeleteToken(ctx, id, func(t *storage.Token) error {
		if check != nil {
			if err := check(t); err != nil {
				return err
			}
		}
		// Deleted in the transaction, then the commit fails.
		return f.failure("delete token")
	}, audit)
}

func (f *faultStore) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	if err := f.failure("touch last used"); err != nil {
		return err
	}
	return f.Store.TouchLastUsed(ctx, used)
}

func (f *faultStore) Bootstrap(ctx context.Context, tokens []*storage.Token, audit *storage.AuditEvent) (bool, error) {
	if err := f.failure("bootstrap"); err != nil {
		return false, err
	}
	return f.Store.Bootstrap(ctx, tokens, audit)
}

func (f *faultStore) RegisterActions(ctx context.Context, actions []storage.Action, max int, audit *storage.AuditEvent) error {
	if err := f.failure("register actions"); err != nil {
		return err
	}
	return f.Store.RegisterActions(ctx, actions, max, audit)
}

func (f *faultStore) PruneAuditEvents(ctx context.Context, before time.Time) (int, error) {
	if err := f.failure("prune audit events"); err != nil {
		return 0, err
	}
	return f.Store.PruneAuditEvents(ctx, before)
}

func (f *faultStore) Ping(ctx context.Context) error {
	if p := f.fault.Load(); p != nil {
		return fmt.Errorf("ping: %w", *p)
	}
	return f.Store.Ping(ctx)
}

// faultHarness is the real server (server.Start) on a faultStore over a real
// bbolt file, handed in through Config.Store.
type faultHarness struct {
	bolt   *bolt.Store
	store  *faultStore
	svc    *service.Service
	client tokendv1.TokenServiceClient
	base   string // http://host:port of the HTTP server
	root   string
	logs   *testkit.SyncBuffer
}

func newFaultHarness(t *testing.T) *faultHarness {
	t.Helper()
	h := &faultHarness{}
	var err error
	if h.bolt, err = bolt.Open(filepath.Join(t.TempDir(), bolt.FileName), bolt.Options{}); err != nil {
		t.Fatal(err)
	}
	h.store = &faultStore{Store: h.bolt}
	ts := startServer(t, server.Config{Store: h.store, AuthFailureLimit: -1})
	// Cleanups run last first: the fault is cleared before the shutdown
	// flushes last-use times.
	t.Cleanup(func() { h.store.inject(nil) })
	h.svc, h.client, h.base, h.root, h.logs = ts.srv.Service(), ts.client, ts.base, ts.root, ts.logs
	if h.root == "" {
		t.Fatal("no root token")
	}
	return h
}

// rest sends one request to the HTTP handler with the root credential.
func (h *faultHarness) rest(t *testing.T, method, path, body string) *restResponse {
	t.Helper()
	ts := &testServer{base: h.base}
	return ts.do(t, method, path, h.root, body)
}

// faultState is everything a write could change, as the API shows it.
type faultState struct {
	tokens  []*tokendv1.Token
	actions []*tokendv1.Action
	audit   []*tokendv1.AuditEvent
}

func (h *faultHarness) state(t *testing.T) faultState {
	t.Helper()
	ctx := withSecret(h.root)
	tokens, err := h.client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	actions, err := h.client.ListActions(ctx, &tokendv1.ListActionsRequest{})
	if err != nil {
		t.Fatalf("ListActions: %v", err)
	}
	audit, err := h.client.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	return faultState{tokens.GetTokens(), actions.GetActions(), audit.GetAuditEvents()}
}

// checkUnchanged compares two states, ignoring last-use times (introspection
// moves them in memory, which is not a write).
func checkFaultUnchanged(t *testing.T, when string, before, after faultState) {
	t.Helper()
	opts := cmp.Options{protocmp.Transform(), protocmp.IgnoreFields(&tokendv1.Token{}, "last_used_time")}
	if d := cmp.Diff(before.tokens, after.tokens, opts); d != "" {
		t.Errorf("%s: tokens changed (-before +after):\n%s", when, d)
	}
	if d := cmp.Diff(before.actions, after.actions, opts); d != "" {
		t.Errorf("%s: actions changed (-before +after):\n%s", when, d)
	}
	if d := cmp.Diff(before.audit, after.audit, opts); d != "" {
		t.Errorf("%s: audit trail changed (-before +after):\n%s", when, d)
	}
}

func (h *faultHarness) readyz(t *testing.T) int {
	t.Helper()
	return h.rest(t, "GET", "/readyz", "").status
}

// TestStoreFaults injects store failures under the real service and both
// transports: while the store fails, every write answers a clean Internal
// "internal error" (the detail goes only to the log) and changes
// nothing, Introspect keeps answering from memory, /readyz answers 503 and
// last-use times wait in memory; once the store recovers, so does
// everything, with no last use lost.
func TestStoreFaults(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault error
		inLog string // what the log must say about it
	}{
		{"ReadOnlyDisk", &os.PathError{Op: "write", Path: "tokend.db", Err: syscall.EROFS}, "read-only file system"},
		{"DiskFull", &os.PathError{Op: "write", Path: "tokend.db", Err: syscall.ENOSPC}, "no space left on device"},
		{"FailingWrite", errors.New("injected write failure"), "injected write failure"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testStoreFault(t, tt.fault, tt.inLog)
		})
	}
}

func testStoreFault(t *testing.T, fault error, inLog string) {
	h := newFaultHarness(t)
	ctx := withSecret(h.root)
	if _, err := h.client.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find"}, {Id: "api::article.article.create"},
	}}); err != nil {
		t.Fatalf("RegisterActions: %v", err)
	}
	mk := func(name string, tok *tokendv1.Token) (*tokendv1.Token, string) {
		t.Helper()
		tok.Name = name
		resp, err := h.client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: tok})
		if err != nil {
			t.Fatalf("CreateToken(%s): %v", name, err)
		}
		return resp.GetToken(), resp.GetSecret()
	}
	keep, keepSecret := mk("keep", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"api::article.article.find"}})
	victim, victimSecret := mk("victim", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	if err := h.svc.FlushLastUsed(context.Background()); err != nil {
		t.Fatalf("FlushLastUsed: %v", err)
	}
	if got := h.readyz(t); got != http.StatusOK {
		t.Fatalf("/readyz %d before the fault, want 200", got)
	}
	before := h.state(t)

	h.store.inject(fault)
	if got := h.readyz(t); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d while the store fails, want 503", got)
	}

	// Every write RPC, over gRPC: Internal "internal error".
	for _, w := range []struct {
		name string
		call func() error
	}{
		{"CreateToken", func() error {
			_, err := h.client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "new"}})
			return err
		}},
		{"UpdateToken", func() error {
			_, err := h.client.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
				Token:      &tokendv1.Token{Id: victim.GetId(), Name: "renamed", Description: "changed"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name", "description"}},
			})
			return err
		}},
		{"RegenerateToken", func() error {
			_, err := h.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: victim.GetId()})
			return err
		}},
		{"DeleteToken", func() error {
			_, err := h.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: victim.GetId()})
			return err
		}},
		{"RegisterActions", func() error {
			_, err := h.client.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "api::article.article.delete"}}})
			return err
		}},
	} {
		err := w.call()
		if st, _ := status.FromError(err); st.Code() != codes.Internal || st.Message() != "internal error" {
			t.Errorf("gRPC %s while the store fails: %v, want Internal \"internal error\"", w.name, err)
		}
	}
	// And over REST: 500 {code: 13, message: "internal error"}.
	for _, w := range []struct{ name, method, path, body string }{
		{"CreateToken", "POST", "/v1/tokens", `{"name":"new"}`},
		{"UpdateToken", "PATCH", "/v1/tokens/" + victim.GetId(), `{"name":"renamed","description":"changed"}`},
		{"RegenerateToken", "POST", "/v1/tokens/" + victim.GetId() + ":regenerate", `{}`},
		{"DeleteToken", "DELETE", "/v1/tokens/" + victim.GetId(), ""},
		{"RegisterActions", "POST", "/v1/actions:register", `{"actions":[{"id":"api::article.article.delete"}]}`},
	} {
		t.Run("REST"+w.name, func(t *testing.T) {
			body := checkError(t, h.rest(t, w.method, w.path, w.body), http.StatusInternalServerError, codes.Internal)
			if body["message"] != "internal error" {
				t.Errorf("message %q, want \"internal error\"", body["message"])
			}
		})
	}
	if n := h.store.refused.Load(); n < 10 {
		t.Errorf("the store refused %d writes, want one per write RPC (10)", n)
	}

	// Introspect answers from memory, over both transports.
	for i := 0; i < 3; i++ {
		for _, c := range []struct {
			secret  string
			id      string
			allowed bool
		}{{keepSecret, keep.GetId(), true}, {victimSecret, victim.GetId(), true}} {
			resp, err := h.client.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: c.secret, Actions: []string{"api::article.article.find"}})
			if err != nil || !resp.GetActive() || resp.GetToken().GetId() != c.id || resp.GetAllowed() != c.allowed {
				t.Errorf("gRPC IntrospectToken while the store fails: %v, %v", resp, err)
			}
			v := mustOK(t, h.rest(t, "POST", "/v1/tokens:introspect", `{"token":"`+c.secret+`","actions":["api::article.article.create"]}`))
			if v["active"] != true || str(v, "token", "id") != c.id {
				t.Errorf("REST introspect while the store fails: %v", v)
			}
		}
	}
	if v := mustOK(t, h.rest(t, "POST", "/v1/tokens:introspect", `{"token":"tkd_nonsense"}`)); v["active"] != false || v["inactiveReason"] != "INACTIVE_REASON_MALFORMED" {
		t.Errorf("REST introspect of a malformed token while the store fails: %v", v)
	}
	// Last-use times cannot be written: they stay in memory.
	if err := h.svc.FlushLastUsed(context.Background()); !errors.Is(err, fault) {
		t.Errorf("FlushLastUsed while the store fails: %v, want the injected fault", err)
	}

	checkFaultUnchanged(t, "while the store fails", before, h.state(t))
	logs := h.logs.String()
	if !strings.Contains(logs, inLog) {
		t.Errorf("the log does not show the store error %q:\n%s", inLog, logs)
	}
	for _, s := range []string{h.root, keepSecret, victimSecret} {
		if strings.Contains(logs, s) {
			t.Errorf("a secret appears in the log")
		}
	}

	// Recovery.
	h.store.inject(nil)
	if got := h.readyz(t); got != http.StatusOK {
		t.Errorf("/readyz %d after the store recovered, want 200", got)
	}
	checkFaultUnchanged(t, "after the store recovered", before, h.state(t))
	if err := h.bolt.CheckConsistency(); err != nil {
		t.Errorf("after the faults: %v", err)
	}
	inMemory, err := h.client.GetToken(ctx, &tokendv1.GetTokenRequest{Id: keep.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.FlushLastUsed(context.Background()); err != nil {
		t.Errorf("FlushLastUsed after the store recovered: %v", err)
	}
	stored, err := h.bolt.GetToken(context.Background(), keep.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if want := inMemory.GetToken().GetLastUsedTime().AsTime(); want.IsZero() || !stored.LastUsedTime.Equal(want) {
		t.Errorf("stored last use %v after recovery, want the one kept in memory, %v", stored.LastUsedTime, want)
	}

	// Writes work again, on both transports.
	created, err := h.client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "new"}})
	if err != nil {
		t.Fatalf("CreateToken after recovery: %v", err)
	}
	mustOK(t, h.rest(t, "PATCH", "/v1/tokens/"+victim.GetId(), `{"description":"changed"}`))
	regen, err := h.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: victim.GetId()})
	if err != nil {
		t.Fatalf("RegenerateToken after recovery: %v", err)
	}
	mustOK(t, h.rest(t, "POST", "/v1/actions:register", `{"actions":[{"id":"api::article.article.delete"}]}`))
	mustOK(t, h.rest(t, "DELETE", "/v1/tokens/"+created.GetToken().GetId(), ""))
	for _, c := range []struct {
		secret string
		active bool
	}{{victimSecret, false}, {regen.GetSecret(), true}, {created.GetSecret(), false}, {keepSecret, true}} {
		resp, err := h.client.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: c.secret})
		if err != nil || resp.GetActive() != c.active {
			t.Errorf("IntrospectToken after recovery: active=%v (%v), want %v", resp.GetActive(), err, c.active)
		}
	}
	after := h.state(t)
	if len(after.audit) != len(before.audit)+5 {
		t.Errorf("%d audit events after 5 writes, want %d", len(after.audit), len(before.audit)+5)
	}
	if err := h.bolt.CheckConsistency(); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}
