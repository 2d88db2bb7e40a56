package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage/bolt"
)

// adminActions is the built-in admin catalog, spelled out here rather than
// through the service's constants so that a renamed action fails the tests.
var adminActions = []string{
	"tokend.token.find", "tokend.token.findOne", "tokend.token.create", "tokend.token.update",
	"tokend.token.delete", "tokend.token.regenerate", "tokend.token.introspect",
	"tokend.action.find", "tokend.action.register",
	"tokend.audit.find", // reading the audit trail
}

// seedExpiredAdmin prepares a data dir holding a bootstrapped store and an
// admin token (full access, 7-day lifespan) created 8 days ago, so it has
// expired by the time the server starts: expiry without waiting. It writes
// the hash key file the server will then use and returns the root secret and
// the expired admin's secret.
func seedExpiredAdmin(t *testing.T, dataDir string) (root, expired string) {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dataDir, "hash.key"), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(dataDir, "tokend.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-8 * 24 * time.Hour)
	svc, err := service.New(ctx, service.Config{
		Store:    st,
		HashKeys: [][]byte{key},
		Now:      func() time.Time { return past },
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if root, err = svc.Bootstrap(ctx); err != nil || root == "" {
		t.Fatalf("Bootstrap: %q, %v", root, err)
	}
	rootCtx := metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+root))
	resp, err := svc.CreateToken(rootCtx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
		Name:     "expired admin",
		Kind:     tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type:     tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS,
		Lifespan: durationpb.New(7 * 24 * time.Hour),
	}})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if err := svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return root, resp.GetSecret()
}

// rpcCase is one RPC of the matrix, spelled for both transports.
type rpcCase struct {
	name   string
	action string // the admin action it requires
	// target returns what the call acts on (a fresh token id, or a secret
	// to introspect), called once per call so successful deletes and
	// regenerates do not interfere; nil when the call needs none.
	target func(t *testing.T) string
	grpc   func(ctx context.Context, c tokendv1.TokenServiceClient, target string) error
	rest   func(target string) (method, path, body string)
}

// cell is the outcome of one call.
type cell struct {
	code   codes.Code
	status int
}

func TestAuthorizationMatrix(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	root, expired := seedExpiredAdmin(t, dataDir)
	// Damping would turn the matrix's many failures from 127.0.0.1 into
	// ResourceExhausted; it has its own test.
	ts := startServer(t, server.Config{DataDir: dataDir, AuthFailureLimit: -1})
	if ts.root != "" {
		t.Fatal("the server bootstrapped a seeded store again")
	}
	ts.root = root

	// The expired admin is what the API says: expired, not merely unknown.
	list, err := ts.client.ListTokens(withSecret(root), &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	var sawExpired bool
	for _, tok := range list.GetTokens() {
		if tok.GetName() == "expired admin" {
			sawExpired = tok.GetExpireTime().AsTime().Before(time.Now())
		}
	}
	if !sawExpired {
		t.Fatal("the seeded admin token is not listed as expired")
	}

	_, introspectSecret := ts.createToken(t, &tokendv1.Token{Name: "introspected"})
	_, apiSecret := ts.createToken(t, &tokendv1.Token{Name: "api credential", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	admin := func(name string, typ tokendv1.TokenType, perms ...string) string {
		_, secret := ts.createToken(t, &tokendv1.Token{Name: name, Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: typ, Permissions: perms})
		return secret
	}
	readOnly := admin("admin read-only", tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	deletedTok, deleted := ts.createToken(t, &tokendv1.Token{Name: "deleted admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	if _, err := ts.client.DeleteToken(withSecret(root), &tokendv1.DeleteTokenRequest{Id: deletedTok.GetId()}); err != nil {
		t.Fatal(err)
	}
	with := map[string]string{}    // action → custom admin holding only it
	without := map[string]string{} // action → custom admin holding every other one
	for _, a := range adminActions {
		with[a] = admin("only "+a, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, a)
		var others []string
		for _, o := range adminActions {
			if o != a {
				others = append(others, o)
			}
		}
		without[a] = admin("all but "+a, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, others...)
	}

	n := 0
	freshToken := func(t *testing.T) string {
		t.Helper()
		n++
		tok, _ := ts.createToken(t, &tokendv1.Token{Name: fmt.Sprintf("target %d", n)})
		return tok.GetId()
	}
	uniqueName := func(string) string { n++; return fmt.Sprintf("created %d", n) }

	rpcs := []rpcCase{
		{
			name: "CreateToken", action: "tokend.token.create",
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, _ string) error {
				_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: uniqueName("")}})
				return err
			},
			rest: func(string) (string, string, string) {
				return "POST", "/v1/tokens", fmt.Sprintf(`{"name":%q}`, uniqueName(""))
			},
		},
		{
			name: "GetToken", action: "tokend.token.findOne", target: freshToken,
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, id string) error {
				_, err := c.GetToken(ctx, &tokendv1.GetTokenRequest{Id: id})
				return err
			},
			rest: func(id string) (string, string, string) { return "GET", "/v1/tokens/" + id, "" },
		},
		{
			name: "ListTokens", action: "tokend.token.find",
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, _ string) error {
				_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 2})
				return err
			},
			rest: func(string) (string, string, string) { return "GET", "/v1/tokens?page_size=2", "" },
		},
		{
			name: "UpdateToken", action: "tokend.token.update", target: freshToken,
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, id string) error {
				_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
					Token:      &tokendv1.Token{Id: id, Description: "changed"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
				})
				return err
			},
			rest: func(id string) (string, string, string) {
				return "PATCH", "/v1/tokens/" + id, `{"description":"changed"}`
			},
		},
		{
			name: "DeleteToken", action: "tokend.token.delete", target: freshToken,
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, id string) error {
				_, err := c.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: id})
				return err
			},
			rest: func(id string) (string, string, string) { return "DELETE", "/v1/tokens/" + id, "" },
		},
		{
			name: "RegenerateToken", action: "tokend.token.regenerate", target: freshToken,
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, id string) error {
				_, err := c.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: id})
				return err
			},
			rest: func(id string) (string, string, string) { return "POST", "/v1/tokens/" + id + ":regenerate", `{}` },
		},
		{
			name: "IntrospectToken", action: "tokend.token.introspect",
			target: func(*testing.T) string { return introspectSecret },
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, secret string) error {
				_, err := c.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: secret, Actions: []string{"api::a.a.find"}})
				return err
			},
			rest: func(secret string) (string, string, string) {
				return "POST", "/v1/tokens:introspect", fmt.Sprintf(`{"token":%q,"actions":["api::a.a.find"]}`, secret)
			},
		},
		{
			name: "RegisterActions", action: "tokend.action.register",
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, _ string) error {
				_, err := c.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "api::authz.item.find"}}})
				return err
			},
			rest: func(string) (string, string, string) {
				return "POST", "/v1/actions:register", `{"actions":[{"id":"api::authz.item.find"}]}`
			},
		},
		{
			name: "ListAuditEvents", action: "tokend.audit.find",
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, _ string) error {
				_, err := c.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: 2})
				return err
			},
			rest: func(string) (string, string, string) { return "GET", "/v1/auditEvents?page_size=2", "" },
		},
		{
			name: "ListActions", action: "tokend.action.find",
			grpc: func(ctx context.Context, c tokendv1.TokenServiceClient, _ string) error {
				_, err := c.ListActions(ctx, &tokendv1.ListActionsRequest{})
				return err
			},
			rest: func(string) (string, string, string) { return "GET", "/v1/actions", "" },
		},
	}
	// The matrix covers every RPC of the service and every admin action.
	covered := map[string]bool{}
	for _, r := range rpcs {
		covered[r.name] = true
	}
	for _, m := range tokendv1.TokenService_ServiceDesc.Methods {
		if !covered[m.MethodName] {
			t.Errorf("the matrix does not cover the RPC %s", m.MethodName)
		}
	}
	catalog, err := ts.client.ListActions(withSecret(root), &tokendv1.ListActionsRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range catalog.GetActions() {
		ids = append(ids, a.GetId())
	}
	if want := slices.Sorted(slices.Values(adminActions)); !slices.Equal(ids, want) {
		t.Fatalf("admin catalog %q, the matrix knows %q", ids, want)
	}

	const (
		unauthenticated = codes.Unauthenticated
		denied          = codes.PermissionDenied
		ok              = codes.OK
	)
	type credential struct {
		name   string
		header func(rpc rpcCase) string // the authorization value; "" sends none
		want   func(rpc rpcCase) codes.Code
	}
	always := func(c codes.Code) func(rpcCase) codes.Code { return func(rpcCase) codes.Code { return c } }
	bearer := func(s string) func(rpcCase) string { return func(rpcCase) string { return "Bearer " + s } }
	creds := []credential{
		{"NoCredential", func(rpcCase) string { return "" }, always(unauthenticated)},
		{"Malformed", bearer("tkda_not-a-token"), always(unauthenticated)},
		{"APIToken", bearer(apiSecret), always(unauthenticated)},
		{"AdminReadOnly", bearer(readOnly), func(r rpcCase) codes.Code {
			if strings.HasSuffix(r.action, ".find") || strings.HasSuffix(r.action, ".findOne") {
				return ok
			}
			return denied
		}},
		{"AdminCustomWithout", func(r rpcCase) string { return "Bearer " + without[r.action] }, always(denied)},
		{"AdminCustomWith", func(r rpcCase) string { return "Bearer " + with[r.action] }, always(ok)},
		{"AdminFullAccess", bearer(root), always(ok)},
		{"ExpiredAdmin", bearer(expired), always(unauthenticated)},
		{"DeletedAdmin", bearer(deleted), always(unauthenticated)},
	}

	for _, rpc := range rpcs {
		t.Run(rpc.name, func(t *testing.T) {
			for _, cred := range creds {
				t.Run(cred.name, func(t *testing.T) {
					want := cred.want(rpc)
					auth := cred.header(rpc)

					var got cell
					var grpcErr error
					t.Run("GRPC", func(t *testing.T) {
						target := ""
						if rpc.target != nil {
							target = rpc.target(t)
						}
						before := snapshot(t, ts)
						ctx := context.Background()
						if auth != "" {
							ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
						}
						grpcErr = rpc.grpc(ctx, ts.client, target)
						got.code = status.Code(grpcErr)
						if got.code != want {
							t.Errorf("code %s, want %s (%v)", got.code, want, grpcErr)
						}
						if want != ok {
							checkUnchanged(t, ts, before)
						}
					})
					var restBody map[string]any
					t.Run("REST", func(t *testing.T) {
						target := ""
						if rpc.target != nil {
							target = rpc.target(t)
						}
						before := snapshot(t, ts)
						method, path, body := rpc.rest(target)
						req, err := http.NewRequest(method, ts.base+path, strings.NewReader(body))
						if err != nil {
							t.Fatal(err)
						}
						if auth != "" {
							req.Header.Set("Authorization", auth)
						}
						r := send(t, req)
						got.status = r.status
						wantStatus := runtime.HTTPStatusFromCode(want)
						if want == ok {
							if r.status != http.StatusOK {
								t.Errorf("status %d, want 200; body %s", r.status, r.body)
							}
							return
						}
						restBody = checkError(t, r, wantStatus, want)
						checkUnchanged(t, ts, before)
					})
					// Both transports agree: the same code, the gateway's
					// status for it, and the same message.
					if runtime.HTTPStatusFromCode(got.code) != got.status {
						t.Errorf("transports disagree: gRPC %s, REST %d", got.code, got.status)
					}
					if restBody != nil && str(restBody, "message") != status.Convert(grpcErr).Message() {
						t.Errorf("messages differ: gRPC %q, REST %q", status.Convert(grpcErr).Message(), str(restBody, "message"))
					}
				})
			}
		})
	}
}

// state is what a refused call must not change: every token (without its
// last-use time, which a refused admin credential legitimately updates) and
// the action catalog.
type state struct {
	tokens  []*tokendv1.Token
	actions []*tokendv1.Action
}

func snapshot(t *testing.T, ts *testServer) state {
	t.Helper()
	ctx := withSecret(ts.root)
	tl, err := ts.client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	al, err := ts.client.ListActions(ctx, &tokendv1.ListActionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tl.GetTokens() {
		tok.LastUsedTime = nil
	}
	return state{tl.GetTokens(), al.GetActions()}
}

func checkUnchanged(t *testing.T, ts *testServer, before state) {
	t.Helper()
	after := snapshot(t, ts)
	same := len(before.tokens) == len(after.tokens) && len(before.actions) == len(after.actions)
	for i := 0; same && i < len(before.tokens); i++ {
		same = proto.Equal(before.tokens[i], after.tokens[i])
	}
	for i := 0; same && i < len(before.actions); i++ {
		same = proto.Equal(before.actions[i], after.actions[i])
	}
	if !same {
		t.Errorf("a refused call changed the store")
	}
}

// TestCredentialTransportEdgeCases covers how the credential travels, on
// both transports.
func TestCredentialTransportEdgeCases(t *testing.T) {
	ts := startServer(t, server.Config{})
	list := func(ctx context.Context) codes.Code {
		_, err := ts.client.ListTokens(ctx, &tokendv1.ListTokensRequest{})
		return status.Code(err)
	}
	tests := []struct {
		name string
		md   []string
		want codes.Code
	}{
		{"SeveralAuthorizationValues", []string{"authorization", "Bearer " + ts.root, "authorization", "Bearer " + ts.root}, codes.Unauthenticated},
		{"LowerCaseScheme", []string{"authorization", "bearer " + ts.root}, codes.OK},
		{"NoScheme", []string{"authorization", ts.root}, codes.Unauthenticated},
		{"OtherKey", []string{"x-authorization", "Bearer " + ts.root}, codes.Unauthenticated},
		{"GrpcgatewayPrefixedKey", []string{"grpcgateway-authorization", "Bearer " + ts.root}, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/GRPC", func(t *testing.T) {
			if got := list(metadata.AppendToOutgoingContext(context.Background(), tt.md...)); got != tt.want {
				t.Errorf("code %s, want %s", got, tt.want)
			}
		})
	}

	t.Run("CallerIDLoggedNotSecret", func(t *testing.T) {
		_, secret := ts.createToken(t, &tokendv1.Token{Name: "logged", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
		mustOK(t, ts.do(t, "GET", "/v1/tokens", secret, ""))
		body, _ := json.Marshal(map[string]string{"token": secret})
		ts.do(t, "POST", "/v1/tokens:introspect", ts.root, string(body))
		logs := ts.logs.String()
		for _, s := range []string{ts.root, secret} {
			if strings.Contains(logs, s) {
				t.Errorf("the log contains a secret")
			}
		}
		if !strings.Contains(logs, "caller=") {
			t.Errorf("request log lines lack the caller: %s", logs)
		}
	})
}

// TestAuthFailureDamping: failed authentications from one address are
// counted across both transports, and once over the limit its further
// failures get ResourceExhausted (429 over REST, with the usual JSON error
// body), while a valid credential from the same address is still served.
func TestAuthFailureDamping(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: 3})
	_, apiSecret := ts.createToken(t, &tokendv1.Token{Name: "api"})
	// PermissionDenied is not an authentication failure.
	_, ro := ts.createToken(t, &tokendv1.Token{Name: "ro", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	for range 5 {
		checkError(t, ts.do(t, "POST", "/v1/actions:register", ro, `{"actions":[{"id":"a.b.find"}]}`), http.StatusForbidden, codes.PermissionDenied)
	}
	checkError(t, ts.do(t, "GET", "/v1/tokens", apiSecret, ""), http.StatusUnauthorized, codes.Unauthenticated)
	checkError(t, ts.do(t, "GET", "/v1/tokens", "", ""), http.StatusUnauthorized, codes.Unauthenticated)
	if _, err := ts.client.ListTokens(withSecret("tkda_guess"), &tokendv1.ListTokensRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("third failure: %v", err)
	}
	// Over the limit: failures are refused on both transports...
	checkError(t, ts.do(t, "GET", "/v1/tokens", apiSecret, ""), http.StatusTooManyRequests, codes.ResourceExhausted)
	if _, err := ts.client.ListTokens(withSecret("tkda_guess"), &tokendv1.ListTokensRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC over the limit: %v, want ResourceExhausted", err)
	}
	// ...but a valid credential from the same address is still served.
	mustOK(t, ts.do(t, "GET", "/v1/tokens", ts.root, ""))
	if _, err := ts.client.ListTokens(withSecret(ts.root), &tokendv1.ListTokensRequest{}); err != nil {
		t.Errorf("valid credential over the limit: %v", err)
	}
}
