package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// tokend is a real server on loopback ports that a test can stop and
// restart on the same addresses and data.
type tokend struct {
	t        testing.TB
	cfg      server.Config
	srv      *server.Server
	root     string
	admin    *client.Client // root credential
	grpcAddr string
}

func startTokend(t testing.TB) *tokend {
	t.Helper()
	dir := t.TempDir()
	td := &tokend{t: t, cfg: server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		DataDir: filepath.Join(dir, "data"), RootTokenFile: filepath.Join(dir, "root.token"),
		AuthFailureLimit: -1, WatchHeartbeat: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	td.start()
	b, err := os.ReadFile(td.cfg.RootTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	td.root = strings.TrimSpace(string(b))
	td.grpcAddr = td.srv.GRPCAddr().String()
	td.admin = td.dial(td.root)
	t.Cleanup(td.stop)
	return td
}

func (td *tokend) start() {
	td.t.Helper()
	srv, err := server.Start(context.Background(), td.cfg)
	if err != nil {
		td.t.Fatal(err)
	}
	td.srv = srv
	// A restart reuses the ports.
	td.cfg.GRPCAddr, td.cfg.HTTPAddr = srv.GRPCAddr().String(), srv.HTTPAddr().String()
}

func (td *tokend) stop() {
	if td.srv != nil {
		td.srv.Shutdown(context.Background())
		td.srv = nil
	}
}

func (td *tokend) dial(secret string) *client.Client {
	td.t.Helper()
	c, err := client.Dial(td.grpcAddr, client.WithToken(secret), client.WithInsecure())
	if err != nil {
		td.t.Fatal(err)
	}
	td.t.Cleanup(func() { c.Close() })
	return c
}

// introspections counts the IntrospectToken calls the server has served,
// from its /metrics.
func (td *tokend) introspections() int {
	td.t.Helper()
	resp, err := http.Get("http://" + td.srv.HTTPAddr().String() + "/metrics")
	if err != nil {
		td.t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "tokend_rpc_requests_total{") && strings.Contains(line, `transport="grpc"`) &&
			strings.Contains(line, "IntrospectToken") {
			v, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
			n += v
		}
	}
	return n
}

var articleActions = []string{"api::article.article.find", "api::article.article.findOne", "api::article.article.create", "api::article.article.delete"}

// apiToken registers the article actions and creates an API token.
func (td *tokend) apiToken(tok *tokendv1.Token) (*tokendv1.Token, string) {
	td.t.Helper()
	ctx := context.Background()
	var acts []*tokendv1.Action
	for _, a := range articleActions {
		acts = append(acts, &tokendv1.Action{Id: a})
	}
	if _, err := td.admin.API().RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: acts}); err != nil {
		td.t.Fatal(err)
	}
	resp, err := td.admin.API().CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: tok})
	if err != nil {
		td.t.Fatal(err)
	}
	return resp.GetToken(), resp.GetSecret()
}

// verifier returns a Verifier whose watch is up.
func (td *tokend) verifier(opts ...client.VerifierOption) *client.Verifier {
	td.t.Helper()
	v, err := client.NewVerifier(td.admin, opts...)
	if err != nil {
		td.t.Fatal(err)
	}
	td.t.Cleanup(func() { v.Close() })
	waitFor(td.t, "the watch to be up", v.Healthy)
	return v
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

func mustVerify(t testing.TB, v *client.Verifier, secret string, actions ...string) client.Result {
	t.Helper()
	r, err := v.Verify(context.Background(), secret, actions...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func TestVerifyCaches(t *testing.T) {
	td := startTokend(t)
	tok, secret := td.apiToken(&tokendv1.Token{Name: "reader"})
	v := td.verifier(client.WithMaxAge(time.Hour))
	calls := td.introspections()

	r := mustVerify(t, v, secret, "api::article.article.find", "api::article.article.create")
	if !r.Active || r.Allowed || r.TokenID != tok.GetId() || r.Name != "reader" ||
		r.Type != tokendv1.TokenType_TOKEN_TYPE_READ_ONLY || r.Kind != tokendv1.TokenKind_TOKEN_KIND_API ||
		len(r.DeniedActions) != 1 || r.DeniedActions[0] != "api::article.article.create" {
		t.Fatalf("first verify: %+v", r)
	}
	for i := 0; i < 10; i++ {
		if r := mustVerify(t, v, secret, "api::article.article.findOne"); !r.Allowed {
			t.Fatalf("cached verify: %+v", r)
		}
	}
	if got := td.introspections() - calls; got != 1 {
		t.Fatalf("%d Introspect calls for 11 verifies of one secret, want 1", got)
	}

	t.Run("MalformedWithoutACall", func(t *testing.T) {
		before := td.introspections()
		for _, bad := range []string{"", "tkd_short", secret[:len(secret)-1] + "x", strings.Replace(secret, "tkd_", "tkda_", 1)} {
			if r := mustVerify(t, v, bad); r.Active || r.InactiveReason != tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED {
				t.Errorf("Verify(%q): %+v, want malformed", bad, r)
			}
		}
		if td.introspections() != before {
			t.Fatal("a malformed secret was sent to tokend")
		}
	})
	t.Run("NotFoundCachedBriefly", func(t *testing.T) {
		goneTok, gone := td.apiToken(&tokendv1.Token{Name: "gone"})
		if _, err := td.admin.API().RegenerateToken(context.Background(), &tokendv1.RegenerateTokenRequest{Id: goneTok.GetId()}); err != nil {
			t.Fatal(err)
		}
		before := td.introspections()
		for i := 0; i < 3; i++ {
			if r := mustVerify(t, v, gone); r.Active || r.InactiveReason != tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND {
				t.Fatalf("regenerated-away secret: %+v", r)
			}
		}
		if got := td.introspections() - before; got != 1 {
			t.Fatalf("%d calls for 3 verifies of an unknown secret, want 1", got)
		}
	})
	t.Run("InvalidAction", func(t *testing.T) {
		if _, err := v.Verify(context.Background(), secret, "no verb"); !errors.Is(err, client.ErrInvalidAction) {
			t.Fatalf("Verify with an invalid action: %v, want ErrInvalidAction", err)
		}
	})
}

func durationpbDays(n int) *durationpb.Duration {
	return durationpb.New(time.Duration(n) * 24 * time.Hour)
}

func TestVerifierRevocation(t *testing.T) {
	td := startTokend(t)
	ctx := context.Background()
	// A max age of an hour: only the watch can make these refusals happen.
	v := td.verifier(client.WithMaxAge(time.Hour), client.WithStaleAge(time.Hour))
	const create = "api::article.article.create"
	update := func(tok *tokendv1.Token, path string) func() {
		return func() {
			if _, err := td.admin.API().UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: tok, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name   string
		token  *tokendv1.Token
		change func(id string) func()
	}{
		{"Delete", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, func(id string) func() {
			return func() {
				if _, err := td.admin.API().DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: id}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"Regenerate", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, func(id string) func() {
			return func() {
				if _, err := td.admin.API().RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: id}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"TypeChange", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, func(id string) func() {
			return update(&tokendv1.Token{Id: id, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}, "type")
		}},
		{"PermissionRemoval", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{create, "api::article.article.find"}}, func(id string) func() {
			return update(&tokendv1.Token{Id: id, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"api::article.article.find"}}, "permissions")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.token.Name = c.name
			tok, secret := td.apiToken(c.token)
			if r := mustVerify(t, v, secret, create); !r.Allowed {
				t.Fatalf("before the change: %+v", r)
			}
			calls := td.introspections()
			if r := mustVerify(t, v, secret, create); !r.Allowed || td.introspections() != calls {
				t.Fatalf("second verify not served from the cache: %+v", r)
			}
			c.change(tok.GetId())()
			waitFor(t, "the verifier to refuse", func() bool { return !mustVerify(t, v, secret, create).Allowed })
		})
	}
}

func TestVerifierAcrossRestart(t *testing.T) {
	td := startTokend(t)
	tok, secret := td.apiToken(&tokendv1.Token{Name: "survivor"})
	v := td.verifier(client.WithMaxAge(time.Hour), client.WithStaleAge(time.Hour))
	mustVerify(t, v, secret)

	td.stop()
	waitFor(t, "the watch to notice", func() bool { return !v.Healthy() })
	td.start()
	// Nothing changed while the server was down: the watch resumes without
	// a reset, and the cached answer is still served without a call.
	waitFor(t, "the watch to resume", v.Healthy)
	calls := td.introspections()
	if r := mustVerify(t, v, secret); !r.Active || td.introspections() != calls {
		t.Fatalf("after the restart: %+v, %d calls, want active and no call", r, td.introspections()-calls)
	}
	if _, err := td.admin.API().DeleteToken(context.Background(), &tokendv1.DeleteTokenRequest{Id: tok.GetId()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the verifier to refuse", func() bool { return !mustVerify(t, v, secret).Active })
}

// clock is a settable clock, safe for concurrent use.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func TestVerifierTokendStopped(t *testing.T) {
	td := startTokend(t)
	_, cachedSecret := td.apiToken(&tokendv1.Token{Name: "cached"})
	_, coldSecret := td.apiToken(&tokendv1.Token{Name: "cold"})
	var clk clock
	v := td.verifier(client.WithClock(clk.now), client.WithStaleAge(time.Minute), client.WithMaxAge(time.Hour))
	mustVerify(t, v, cachedSecret)

	td.stop()
	waitFor(t, "the watch to notice", func() bool { return !v.Healthy() })
	if r := mustVerify(t, v, cachedSecret); !r.Active {
		t.Fatalf("cached answer within the stale age: %+v", r)
	}
	if _, err := v.Verify(context.Background(), coldSecret); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("uncached secret with tokend stopped: %v, want ErrUnavailable", err)
	}
	clk.advance(time.Minute)
	if _, err := v.Verify(context.Background(), cachedSecret); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("cached answer past the stale age: %v, want ErrUnavailable", err)
	}
}

func TestVerifierNeverPastExpiry(t *testing.T) {
	td := startTokend(t)
	tok, secret := td.apiToken(&tokendv1.Token{Name: "expiring", Lifespan: durationpbDays(7)})
	var clk clock
	v := td.verifier(client.WithClock(clk.now), client.WithMaxAge(30*24*time.Hour))
	if r := mustVerify(t, v, secret); !r.Active || !r.ExpireTime.Equal(tok.GetExpireTime().AsTime()) {
		t.Fatalf("%+v", r)
	}
	calls := td.introspections()
	clk.advance(7*24*time.Hour + time.Second)
	mustVerify(t, v, secret) // the server's clock has not moved: it still says active
	if td.introspections() != calls+1 {
		t.Fatal("an answer was used past the token's expiry")
	}
}

func TestVerifierCollapsesConcurrentCalls(t *testing.T) {
	td := startTokend(t)
	_, secret := td.apiToken(&tokendv1.Token{Name: "popular"})
	v := td.verifier()
	calls := td.introspections()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := v.Verify(context.Background(), secret)
			if err == nil && !r.Active {
				err = errors.New("inactive")
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := td.introspections() - calls; got != 1 {
		t.Fatalf("%d Introspect calls for 100 concurrent verifies of one cold secret, want 1", got)
	}
}

func TestNewVerifierOptions(t *testing.T) {
	td := startTokend(t)
	for _, opt := range []client.VerifierOption{client.WithMaxAge(0), client.WithMaxEntries(0), client.WithPrefix(""), client.WithStaleAge(-1)} {
		if _, err := client.NewVerifier(td.admin, opt); err == nil {
			t.Error("NewVerifier accepted an invalid option")
		}
	}
	if _, err := client.NewVerifier(nil); err == nil {
		t.Error("NewVerifier accepted a nil client")
	}
}

func TestVerifierMaxEntries(t *testing.T) {
	td := startTokend(t)
	v := td.verifier(client.WithMaxEntries(2))
	var secrets []string
	for _, n := range []string{"a", "b", "c"} {
		_, s := td.apiToken(&tokendv1.Token{Name: n})
		secrets = append(secrets, s)
		mustVerify(t, v, s)
	}
	calls := td.introspections()
	for _, s := range secrets {
		mustVerify(t, v, s)
	}
	if got := td.introspections() - calls; got < 1 {
		t.Fatal("3 secrets fitted in a cache of 2")
	}
}

// TestVerifyAfterClose: Close forgets the cache and stops the watch; a
// secret that was cached a moment ago is then refused with ErrClosed
// rather than answered, and a malformed string is still answered without a
// call.
func TestVerifyAfterClose(t *testing.T) {
	td := startTokend(t)
	_, secret := td.apiToken(&tokendv1.Token{Name: "closing", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	v := td.verifier()
	if r := mustVerify(t, v, secret, "api::article.article.find"); !r.Allowed {
		t.Fatalf("before Close: %+v, want allowed", r)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := v.Verify(context.Background(), secret, "api::article.article.find"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Close: %+v, %v; want ErrClosed", r, err)
	}
	r, err := v.Verify(context.Background(), "not-a-token")
	if err != nil || r.Active || r.InactiveReason != tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED {
		t.Fatalf("malformed after Close: %+v, %v; want inactive, malformed, no error", r, err)
	}
	if v.Healthy() {
		t.Error("Healthy after Close")
	}
}
