package service_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage/bolt"
)

// This file is the shared harness of the gRPC-level tests: a real bbolt file
// under t.TempDir(), the real Service on a fake clock, a real grpc.Server on
// bufconn and a generated client.

const day = 24 * time.Hour

// t0 is where every fake clock starts: whole seconds, far from any edge.
var t0 = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// The built-in admin actions, spelled out (not through the
// service's constants, so a renamed constant fails the tests).
const (
	actTokenFind       = "tokend.token.find"
	actTokenFindOne    = "tokend.token.findOne"
	actTokenCreate     = "tokend.token.create"
	actTokenUpdate     = "tokend.token.update"
	actTokenDelete     = "tokend.token.delete"
	actTokenRegenerate = "tokend.token.regenerate"
	actTokenIntrospect = "tokend.token.introspect"
	actActionFind      = "tokend.action.find"
	actActionRegister  = "tokend.action.register"
)

// adminActions lists the built-in admin catalog ordered by id.
var adminActions = []string{
	actActionFind, actActionRegister,
	actTokenCreate, actTokenDelete, actTokenFind, actTokenFindOne,
	actTokenIntrospect, actTokenRegenerate, actTokenUpdate,
}

// harness is one running tokend: store, service, gRPC server and client.
type harness struct {
	ctx   context.Context // no credential; Background, so it outlives subtests
	clock *testkit.Clock
	path  string // the bbolt file
	key   []byte // the hash key, kept for reopening
	opts  []func(*service.Config)
	logs  *testkit.SyncBuffer

	store  *bolt.Store
	svc    *service.Service
	client tokendv1.TokenServiceClient
	stopFn func() error

	root string // the root admin secret from Bootstrap

	mu      sync.Mutex
	secrets []string // every secret handed out, checked against the logs
	names   int
}

// newHarness starts a bootstrapped tokend and stops it when t ends. opts
// adjust the service configuration (and are reused by restart).
func newHarness(t *testing.T, opts ...func(*service.Config)) *harness {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	h := &harness{
		ctx:   context.Background(),
		clock: testkit.NewClock(t0),
		path:  filepath.Join(t.TempDir(), "tokend.db"),
		key:   key,
		opts:  opts,
		logs:  &testkit.SyncBuffer{},
	}
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.stopFn != nil {
			if err := h.stopFn(); err != nil {
				t.Errorf("stop harness: %v", err)
			}
		}
		logs := h.logs.String()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range h.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("the service log contains a secret (%s)", hintOf(s))
			}
		}
	})
	root, err := h.svc.Bootstrap(h.ctx)
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if root == "" {
		t.Fatal("Bootstrap of a fresh store returned no root secret")
	}
	h.root = root
	h.remember(root)
	return h
}

// start opens the store, builds the service and serves it on a new bufconn.
func (h *harness) start() error {
	store, err := bolt.Open(h.path, bolt.Options{Now: h.clock.Now})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	cfg := service.Config{
		Store:    store,
		HashKeys: [][]byte{h.key},
		Now:      h.clock.Now,
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range h.opts {
		o(&cfg)
	}
	svc, err := service.New(h.ctx, cfg)
	if err != nil {
		store.Close()
		return fmt.Errorf("new service: %w", err)
	}
	srv := grpc.NewServer()
	tokendv1.RegisterTokenServiceServer(srv, svc)
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		<-served
		svc.Close(h.ctx)
		store.Close()
		return fmt.Errorf("dial bufconn: %w", err)
	}
	h.store, h.svc, h.client = store, svc, tokendv1.NewTokenServiceClient(conn)
	h.stopFn = func() error {
		conn.Close()
		srv.Stop()
		serveErr := <-served
		closeErr := svc.Close(context.Background())
		storeErr := store.Close()
		switch {
		case serveErr != nil:
			return fmt.Errorf("serve: %w", serveErr)
		case closeErr != nil:
			return fmt.Errorf("close service: %w", closeErr)
		case storeErr != nil:
			return fmt.Errorf("close store: %w", storeErr)
		}
		return nil
	}
	return nil
}

// restart stops everything (the service flushes last-use times on Close) and
// reopens the same file with the same key.
func (h *harness) restart(t *testing.T) {
	t.Helper()
	stop := h.stopFn
	h.stopFn = nil
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := h.start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

func (h *harness) remember(secret string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, secret)
}

// uniqueName returns a fresh token name.
func (h *harness) uniqueName(prefix string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.names++
	return fmt.Sprintf("%s %d", prefix, h.names)
}

// as returns a context carrying secret as the call's credential.
func (h *harness) as(secret string) context.Context {
	return metadata.AppendToOutgoingContext(h.ctx, "authorization", "Bearer "+secret)
}

// asRoot returns a context carrying the root admin credential.
func (h *harness) asRoot() context.Context { return h.as(h.root) }

// create creates tok as root and fails the test on error.
func (h *harness) create(t *testing.T, tok *tokendv1.Token) (*tokendv1.Token, string) {
	t.Helper()
	return h.createAs(t, h.root, tok)
}

// createAs creates tok with the given credential and fails the test on error.
func (h *harness) createAs(t *testing.T, secret string, tok *tokendv1.Token) (*tokendv1.Token, string) {
	t.Helper()
	resp, err := h.client.CreateToken(h.as(secret), &tokendv1.CreateTokenRequest{Token: tok})
	if err != nil {
		t.Fatalf("CreateToken(%q): %v", tok.GetName(), err)
	}
	h.remember(resp.GetSecret())
	return resp.GetToken(), resp.GetSecret()
}

// apiToken creates an unlimited API token of type typ as root.
func (h *harness) apiToken(t *testing.T, typ tokendv1.TokenType, perms ...string) (*tokendv1.Token, string) {
	t.Helper()
	return h.create(t, &tokendv1.Token{Name: h.uniqueName("api"), Kind: tokendv1.TokenKind_TOKEN_KIND_API, Type: typ, Permissions: perms})
}

// adminToken creates an unlimited admin token of type typ as root.
func (h *harness) adminToken(t *testing.T, typ tokendv1.TokenType, perms ...string) (*tokendv1.Token, string) {
	t.Helper()
	return h.create(t, &tokendv1.Token{Name: h.uniqueName("admin"), Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: typ, Permissions: perms})
}

// register adds API actions to the catalog as root.
func (h *harness) register(t *testing.T, ids ...string) {
	t.Helper()
	req := &tokendv1.RegisterActionsRequest{}
	for _, id := range ids {
		req.Actions = append(req.Actions, &tokendv1.Action{Id: id})
	}
	if _, err := h.client.RegisterActions(h.asRoot(), req); err != nil {
		t.Fatalf("RegisterActions(%v): %v", ids, err)
	}
}

// get reads a token as root.
func (h *harness) get(t *testing.T, id string) *tokendv1.Token {
	t.Helper()
	resp, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: id})
	if err != nil {
		t.Fatalf("GetToken(%s): %v", id, err)
	}
	return resp.GetToken()
}

// listAll lists every token as root, in the default order.
func (h *harness) listAll(t *testing.T) []*tokendv1.Token {
	t.Helper()
	resp, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	if resp.GetNextPageToken() != "" {
		t.Fatal("ListTokens: more than 1000 tokens in a test")
	}
	return resp.GetTokens()
}

// introspect asks, as root, about secret.
func (h *harness) introspect(t *testing.T, secret string, actions ...string) *tokendv1.IntrospectTokenResponse {
	t.Helper()
	resp, err := h.client.IntrospectToken(h.asRoot(), &tokendv1.IntrospectTokenRequest{Token: secret, Actions: actions})
	if err != nil {
		t.Fatalf("IntrospectToken: %v", err)
	}
	return resp
}

// wantActive fails unless secret is an active API token.
func (h *harness) wantActive(t *testing.T, secret string) *tokendv1.IntrospectTokenResponse {
	t.Helper()
	resp := h.introspect(t, secret)
	if !resp.GetActive() || resp.GetInactiveReason() != tokendv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED {
		t.Fatalf("IntrospectToken = active %v, reason %v; want active", resp.GetActive(), resp.GetInactiveReason())
	}
	return resp
}

// wantInactive fails unless secret is inactive for reason, with nothing
// said about the token.
func (h *harness) wantInactive(t *testing.T, secret string, reason tokendv1.InactiveReason) {
	t.Helper()
	resp := h.introspect(t, secret, "x.find")
	want := &tokendv1.IntrospectTokenResponse{InactiveReason: reason}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Fatalf("IntrospectToken: want inactive %v and nothing else (-want +got):\n%s", reason, diff)
	}
}

// wantCode fails unless err has code want.
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (%v), want %v", got, err, want)
	}
}

// violations returns the google.rpc.BadRequest field violations of err.
func violations(err error) []*errdetails.BadRequest_FieldViolation {
	st, _ := status.FromError(err)
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

// wantInvalid fails unless err is InvalidArgument with a BadRequest
// violation of field whose description contains every one of substrs.
func wantInvalid(t *testing.T, err error, field string, substrs ...string) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument)
	vs := violations(err)
	var fields []string
	for _, v := range vs {
		fields = append(fields, v.GetField())
		if v.GetField() != field {
			continue
		}
		for _, s := range substrs {
			if !strings.Contains(v.GetDescription(), s) {
				t.Fatalf("violation of %s = %q, want it to mention %q", field, v.GetDescription(), s)
			}
		}
		return
	}
	t.Fatalf("InvalidArgument %q names fields %q in its BadRequest details, want %q", status.Convert(err).Message(), fields, field)
}

// wantNoSecret fails if secret appears anywhere in msg's text form.
func wantNoSecret(t *testing.T, msg proto.Message, secret string) {
	t.Helper()
	if secret == "" {
		t.Fatal("wantNoSecret: empty secret")
	}
	if text := prototext.Format(msg); strings.Contains(text, secret) {
		t.Fatalf("%T contains the secret:\n%s", msg, text)
	}
}

// hintOf is what a secret's hint is: its prefix and its last 4 characters.
func hintOf(secret string) string {
	i := strings.LastIndexByte(secret, '_')
	if i < 0 || len(secret) < 4 {
		return ""
	}
	return secret[:i+1] + "…" + secret[len(secret)-4:]
}

// names returns the names of tokens, in order.
func names(tokens []*tokendv1.Token) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = t.GetName()
	}
	return out
}

// sorted returns a sorted copy of s.
func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// lifespan is a Duration for d, or nil for 0 (unlimited).
func lifespan(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// protoDiff compares protos (or slices of them).
func protoDiff(want, got any, opts ...cmp.Option) string {
	return cmp.Diff(want, got, append([]cmp.Option{protocmp.Transform()}, opts...)...)
}

// codeOf is the gRPC code of err.
func codeOf(err error) codes.Code { return status.Code(err) }

// clone returns a deep copy of m.
func clone[M proto.Message](m M) M { return proto.Clone(m).(M) }

// cloneAll returns deep copies of ms.
func cloneAll[M proto.Message](ms []M) []M {
	out := make([]M, len(ms))
	for i, m := range ms {
		out[i] = clone(m)
	}
	return out
}
