package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
)

// TestIntrospectDifferential sends every kind of introspection to the fast
// path (the real server) and to the generated gateway route (the same
// server's pipeline with the fast path left out), and compares status,
// content type, WWW-Authenticate and the whole body, error details included,
// after normalising JSON whitespace.
func TestIntrospectDifferential(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s, root := startTestServer(t, Config{now: clock.Now})
	deps := s.httpDeps
	deps.gatewayOnly = true
	gatewayOnly, err := newHTTPHandler(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(gatewayOnly)
	t.Cleanup(gw.Close)
	fast := "http://" + s.HTTPAddr().String()

	admin := metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+root))
	create := func(tok *tokendv1.Token) (*tokendv1.Token, string) {
		t.Helper()
		resp, err := s.svc.CreateToken(admin, &tokendv1.CreateTokenRequest{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetToken(), resp.GetSecret()
	}
	if _, err := s.svc.RegisterActions(admin, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find"}, {Id: "api::article.article.create"}, {Id: "api::article.article.delete"},
	}}); err != nil {
		t.Fatal(err)
	}
	_, readOnly := create(&tokendv1.Token{Name: "reader", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	_, custom := create(&tokendv1.Token{Name: "custom", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM,
		Permissions: []string{"api::article.article.find", "api::article.article.create"}})
	_, expiring := create(&tokendv1.Token{Name: "expiring", Lifespan: durationpb.New(7 * 24 * time.Hour)})
	rotated, previous := create(&tokendv1.Token{Name: "rotated"})
	regen, err := s.svc.RegenerateToken(admin, &tokendv1.RegenerateTokenRequest{Id: rotated.GetId(), GracePeriod: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_, admin2 := create(&tokendv1.Token{Name: "limited admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})

	body := func(secret string, actions ...string) string {
		b, _ := json.Marshal(map[string]any{"token": secret, "actions": actions})
		return string(b)
	}
	type call struct {
		name, method, auth, body string
	}
	bearer := "Bearer " + root
	calls := []call{
		{"Active", "POST", bearer, body(readOnly)},
		{"ActiveNoActions", "POST", bearer, `{"token":"` + readOnly + `"}`},
		{"ActiveAllowed", "POST", bearer, body(custom, "api::article.article.find")},
		{"ActiveDenied", "POST", bearer, body(readOnly, "api::article.article.create", "api::article.article.delete")},
		{"ActiveSomeDenied", "POST", bearer, body(custom, "api::article.article.find", "api::article.article.delete", "api::article.article.create")},
		{"PreviousSecret", "POST", bearer, body(previous, "api::article.article.find")},
		{"NewSecret", "POST", bearer, body(regen.GetSecret())},
		{"Malformed", "POST", bearer, body("not a token")},
		{"NotFound", "POST", bearer, body(readOnly[:len(readOnly)-1] + "x")},
		{"AdminSecretAsToken", "POST", bearer, body(admin2)},
		{"EmptyBody", "POST", bearer, ""},
		{"EmptyObject", "POST", bearer, "{}"},
		{"NoCredential", "POST", "", body(readOnly)},
		{"MalformedCredential", "POST", "Bearer garbage", body(readOnly)},
		{"BasicCredential", "POST", "Basic " + root, body(readOnly)},
		{"APITokenAsCaller", "POST", "Bearer " + readOnly, body(readOnly)},
		{"CallerLacksIntrospect", "POST", "Bearer " + admin2, body(readOnly)},
		{"BadJSON", "POST", bearer, `{"token": ` + readOnly + `}`},
		{"UnknownField", "POST", bearer, `{"token":"x","action":["a.find"]}`},
		{"WrongType", "POST", bearer, `{"token":5}`},
		{"ActionsNotAList", "POST", bearer, `{"token":"x","actions":"a.find"}`},
		{"TrailingData", "POST", bearer, `{"token":"x"} {"token":"y"}`},
		{"TopLevelArray", "POST", bearer, `[{"token":"x"}]`},
		{"InvalidAction", "POST", bearer, body(readOnly, "../a")},
		{"TooManyActions", "POST", bearer, body(readOnly, strings.Split(strings.Repeat("a.find,", 1001), ",")[:1001]...)},
		{"TooLarge", "POST", bearer, `{"token":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`},
		{"WrongMethod", "GET", bearer, ""},
		{"WrongMethodPut", "PUT", bearer, body(readOnly)},
	}
	compare := func(t *testing.T, c call) {
		t.Helper()
		want := send(t, gw.URL, c.method, c.auth, c.body)
		got := send(t, fast, c.method, c.auth, c.body)
		if got.status != want.status || got.contentType != want.contentType || got.wwwAuthenticate != want.wwwAuthenticate {
			t.Errorf("fast path: %d %q %q; gateway: %d %q %q", got.status, got.contentType, got.wwwAuthenticate, want.status, want.contentType, want.wwwAuthenticate)
		}
		if got.body != want.body {
			t.Errorf("bodies differ\nfast path: %s\ngateway:   %s", got.body, want.body)
		}
		if got.status == 0 || got.body == "" {
			t.Errorf("empty answer: %+v", got)
		}
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) { compare(t, c) })
	}
	// Later: the grace period and the short lifespan are over.
	clock.Advance(8 * 24 * time.Hour)
	for _, c := range []call{
		{"Expired", "POST", bearer, body(expiring)},
		{"PreviousSecretAfterGrace", "POST", bearer, body(previous)},
		{"NewSecretAfterGrace", "POST", bearer, body(regen.GetSecret(), "api::article.article.find")},
	} {
		t.Run(c.name, func(t *testing.T) { compare(t, c) })
	}
}

// startTestServer starts a server on loopback ports and a temporary data
// directory, with damping off and the log discarded, and returns it with
// its root admin secret. It is shut down when the test ends.
func startTestServer(tb testing.TB, cfg Config) (*Server, string) {
	tb.Helper()
	dir := tb.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", dir
	cfg.RootTokenFile, cfg.AuthFailureLimit = filepath.Join(dir, "root"), -1
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	data, err := os.ReadFile(cfg.RootTokenFile)
	if err != nil {
		tb.Fatal(err)
	}
	return s, strings.TrimSpace(string(data))
}

type answer struct {
	status                       int
	contentType, wwwAuthenticate string
	body                         string // JSON re-marshalled with sorted keys, or the raw text
}

// send makes one request and normalises the answer: JSON whitespace and key
// order vary (protojson adds random spaces), values must not; the last-use
// time moves between two calls, so only its presence is compared.
func send(t *testing.T, base, method, auth, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+"/v1/tokens:introspect", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), wwwAuthenticate: resp.Header.Get("WWW-Authenticate"), body: string(raw)}
	var v map[string]any
	if json.Unmarshal(raw, &v) == nil {
		if tok, ok := v["token"].(map[string]any); ok && tok["lastUsedTime"] != nil {
			tok["lastUsedTime"] = "set"
		}
		norm, _ := json.Marshal(v)
		a.body = string(norm)
	}
	return a
}

// TestIntrospectViewsFollowSnapshots: the views cache keeps no snapshot
// alive: once a token is regenerated (a new snapshot), the old snapshot's
// entry goes when the collector takes it, and the new one gets its own.
func TestIntrospectViewsFollowSnapshots(t *testing.T) {
	s, root := startTestServer(t, Config{})
	views := s.httpDeps.views
	admin := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+root))
	created, err := s.svc.CreateToken(admin, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "cached"}})
	if err != nil {
		t.Fatal(err)
	}
	cached := func() int {
		n := 0
		for i := range views.shards {
			sh := &views.shards[i]
			sh.mu.RLock()
			n += len(sh.m)
			sh.mu.RUnlock()
		}
		return n
	}
	introspect := func(secret string) {
		t.Helper()
		in, err := s.svc.CheckToken(secret, nil)
		if err != nil || in.Token == nil {
			t.Fatalf("CheckToken: %+v, %v", in, err)
		}
		if _, err := views.appendJSON(nil, &in); err != nil {
			t.Fatal(err)
		}
		views.response(&in)
	}
	// The index keeps a token's first version reachable (later versions
	// share its last-use record), so the test starts from the second.
	regenerate := func() string {
		t.Helper()
		regen, err := s.svc.RegenerateToken(admin, &tokendv1.RegenerateTokenRequest{Id: created.GetToken().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return regen.GetSecret()
	}
	introspect(regenerate())
	if n := cached(); n != 1 {
		t.Fatalf("%d snapshots cached after one token's introspection, want 1", n)
	}
	introspect(regenerate())
	// Cleanups run on their own goroutine after the collection that finds
	// the snapshot unreachable: collect until it has run, or give up.
	for i := 0; i < 1000 && cached() != 1; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if n := cached(); n != 1 {
		t.Errorf("%d snapshots cached after the old one was replaced and collected, want 1", n)
	}
}
