package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// Bounds of the soak test. The heap bound is on HeapAlloc after a GC, at
// the end of the traffic against just before it, with the clients still
// connected; it is the same for any duration, so a longer run only makes a
// leak easier to catch.
const (
	soakHeapGrowthBound = 8 << 20 // bytes
	// soakGoroutineSlack is how many goroutines above the baseline still
	// count as settled: the runtime and the race detector start a few of
	// their own at times.
	soakGoroutineSlack = 5
	soakWorkers        = 8
	soakStableTokens   = 100
)

var soakActions = []string{
	"api::article.article.find", "api::article.article.findOne",
	"api::article.article.create", "api::article.article.delete",
}

// TestSoak runs mixed concurrent traffic against a real server for
// TOKEND_SOAK_DURATION (default 3s): about 90% introspections, half over
// gRPC and half over REST, a few of them with unknown or malformed secrets or
// a bad admin credential, and 10% writes (create, update, regenerate,
// delete) over both transports. It ends with no unexpected answer, the
// goroutine count back to its baseline, the heap within
// soakHeapGrowthBound of its baseline, and, after a graceful Shutdown and a
// restart, every last use that the running server reported, persisted.
func TestSoak(t *testing.T) {
	duration := 3 * time.Second
	if v := os.Getenv("TOKEND_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("TOKEND_SOAK_DURATION=%q: want a positive duration", v)
		}
		duration = d
	}
	if testing.Short() {
		duration = min(duration, time.Second)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("soak for %v with %d workers, seed %d", duration, soakWorkers, seed)

	goroutines0 := runtime.NumGoroutine()
	dir := t.TempDir()
	logs := &soakLog{}
	cfg := server.Config{
		DataDir:       filepath.Join(dir, "data"),
		RootTokenFile: filepath.Join(dir, "root-token"),
		// Bad admin credentials are part of the traffic: no damping.
		AuthFailureLimit: -1,
		// The periodic flush is driven by the test (below), so that the
		// last uses of the end of the run can only reach the disk through
		// the flush of Shutdown.
		FlushInterval: time.Hour,
		// Info, as in production: the request lines are formatted, then
		// dropped, except warnings and errors.
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ts := startServer(t, cfg)
	rest := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: soakWorkers}, Timeout: 30 * time.Second}
	soak := &soakRun{t: t, ts: ts, rest: rest}
	soak.setUp()

	// Baselines, with every client connected and warm.
	goroutines1 := runtime.NumGoroutine()
	heap1 := heapAfterGC()

	// The traffic, and a flusher standing in for the periodic one during
	// the first 60% of it.
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	begin := time.Now()
	var lastFlush atomic.Int64
	flushDone := make(chan struct{})
	go func() {
		defer close(flushDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		end := time.After(duration * 6 / 10)
		for {
			select {
			case <-end:
				return
			case <-tick.C:
				if err := ts.srv.Service().FlushLastUsed(ctx); err != nil && ctx.Err() == nil {
					soak.unexpected("FlushLastUsed: %v", err)
				}
				lastFlush.Store(time.Now().UnixNano())
			}
		}
	}()
	var wg sync.WaitGroup
	peak := atomic.Int64{}
	for i := range soakWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			soak.work(ctx, rand.New(rand.NewPCG(seed, uint64(i))), i, &peak)
		}()
	}
	wg.Wait()
	<-flushDone
	took := time.Since(begin)

	c := &soak.counts
	total := c.grpcIntrospect.Load() + c.restIntrospect.Load() + c.writes.Load()
	t.Logf("%d calls in %.1fs: %.0f/s (%d gRPC introspections, %d REST introspections, %d writes, %d of them with a bad credential); peak %d goroutines",
		total, took.Seconds(), float64(total)/took.Seconds(),
		c.grpcIntrospect.Load(), c.restIntrospect.Load(), c.writes.Load(), c.badCredential.Load(), peak.Load())
	if n := soak.errs.Load(); n > 0 {
		soak.mu.Lock()
		t.Errorf("%d unexpected answers; the first:\n%s", n, strings.Join(soak.first, "\n"))
		soak.mu.Unlock()
	}
	if got := logs.problems(); got != "" {
		t.Errorf("the server logged warnings or errors:\n%s", got)
	}
	if c.writes.Load() == 0 || c.grpcIntrospect.Load() == 0 || c.restIntrospect.Load() == 0 {
		t.Errorf("some kind of traffic never ran")
	}

	// Goroutines and heap back to their baselines, the clients still
	// connected (idle HTTP connections closed: they were opened for the
	// concurrency of the run).
	rest.CloseIdleConnections()
	settleGoroutines(t, "after the traffic", goroutines1+soakGoroutineSlack)
	heap2 := heapAfterGC()
	growth := int64(heap2) - int64(heap1)
	t.Logf("goroutines: %d before the server, %d with it warm, %d after the traffic; heap: %.1f MiB warm, %.1f MiB after the traffic (%+.1f MiB, bound %d MiB)",
		goroutines0, goroutines1, runtime.NumGoroutine(), mib(heap1), mib(heap2), float64(growth)/(1<<20), soakHeapGrowthBound>>20)
	if growth > soakHeapGrowthBound {
		t.Errorf("heap grew by %.1f MiB over the run, bound %d MiB", float64(growth)/(1<<20), soakHeapGrowthBound>>20)
	}

	// Every last use the server reports must survive a graceful stop.
	before := soak.tokens()
	lateUses := 0
	for _, tok := range before {
		if lu := tok.GetLastUsedTime(); lu != nil && lu.AsTime().UnixNano() > lastFlush.Load() {
			lateUses++
		}
	}
	for _, id := range soak.introspected() {
		if before[id].GetLastUsedTime() == nil {
			t.Errorf("token %s was introspected but reports no last use", id)
		}
	}
	ts.conn.Close()
	ts.shutdown(t)
	settleGoroutines(t, "after Shutdown", goroutines0+soakGoroutineSlack)

	cfg.Logger = newTextLogger(io.Discard)
	ts = startServer(t, cfg)
	soak.ts = ts
	after := soak.tokens()
	persisted := 0
	for id, b := range before {
		a, ok := after[id]
		if !ok {
			t.Errorf("token %s (%q) lost in the restart", id, b.GetName())
			continue
		}
		if b.GetLastUsedTime() == nil {
			continue
		}
		bt, at := b.GetLastUsedTime().AsTime(), a.GetLastUsedTime().AsTime()
		switch {
		case a.GetLastUsedTime() == nil:
			t.Errorf("token %q: last use %v not persisted", b.GetName(), bt)
		case b.GetKind() == tokendv1.TokenKind_TOKEN_KIND_ADMIN && at.Before(bt):
			// The calls since the restart may have moved it on.
			t.Errorf("token %q: last use %v after the restart, %v before", b.GetName(), at, bt)
		case b.GetKind() != tokendv1.TokenKind_TOKEN_KIND_ADMIN && !at.Equal(bt):
			t.Errorf("token %q: last use %v after the restart, %v before", b.GetName(), at, bt)
		default:
			persisted++
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d tokens after the restart, %d before", len(after), len(before))
	}
	t.Logf("%d last uses persisted across the restart, %d of them only by the flush of Shutdown", persisted, lateUses)
	if lateUses == 0 && duration >= 2*time.Second {
		t.Errorf("no last use came after the last periodic flush: the flush of Shutdown went untested")
	}
}

// soakRun is the state of one soak: the tokens it uses and what it counted.
type soakRun struct {
	t    *testing.T
	ts   *testServer
	rest *http.Client

	stable []soakToken // created up front, never changed

	counts struct {
		grpcIntrospect, restIntrospect, writes, badCredential atomic.Int64
	}
	errs  atomic.Int64
	mu    sync.Mutex
	first []string // the first unexpected answers
	used  map[string]bool
}

type soakToken struct {
	id, name, secret string
	typ              tokendv1.TokenType
	perms            []string
}

// allows says whether the token allows every one of actions, by the rules
// of its type: read-only allows the find and findOne verbs, full access
// everything, custom exactly its permissions.
func (tok *soakToken) allows(actions []string) bool {
	for _, a := range actions {
		verb := a[strings.LastIndex(a, ".")+1:]
		switch tok.typ {
		case tokendv1.TokenType_TOKEN_TYPE_READ_ONLY:
			if verb != "find" && verb != "findOne" {
				return false
			}
		case tokendv1.TokenType_TOKEN_TYPE_CUSTOM:
			if !slices.Contains(tok.perms, a) {
				return false
			}
		}
	}
	return true
}

func (s *soakRun) unexpected(format string, args ...any) {
	if s.errs.Add(1) <= 10 {
		s.mu.Lock()
		s.first = append(s.first, fmt.Sprintf(format, args...))
		s.mu.Unlock()
	}
}

// setUp registers the actions, creates the stable tokens and introspects
// each once over both transports, which opens the connections too.
func (s *soakRun) setUp() {
	t, ts := s.t, s.ts
	ctx := withSecret(ts.root)
	var actions []*tokendv1.Action
	for _, a := range soakActions {
		actions = append(actions, &tokendv1.Action{Id: a})
	}
	if _, err := ts.client.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: actions}); err != nil {
		t.Fatalf("RegisterActions: %v", err)
	}
	s.used = map[string]bool{}
	for i := range soakStableTokens {
		tok := soakToken{name: fmt.Sprintf("stable-%03d", i)}
		switch i % 3 {
		case 0:
			tok.typ = tokendv1.TokenType_TOKEN_TYPE_READ_ONLY
		case 1:
			tok.typ = tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS
		case 2:
			tok.typ = tokendv1.TokenType_TOKEN_TYPE_CUSTOM
			tok.perms = []string{soakActions[0], soakActions[2]}
		}
		created, secret := ts.createToken(t, &tokendv1.Token{Name: tok.name, Type: tok.typ, Permissions: tok.perms})
		tok.id, tok.secret = created.GetId(), secret
		s.stable = append(s.stable, tok)
	}
	for i := range s.stable {
		s.introspectGRPC(&s.stable[i], soakActions[:1])
		s.introspectREST(&s.stable[i], soakActions[:1])
	}
	if n := s.errs.Load(); n > 0 {
		t.Fatalf("set-up: %d unexpected answers: %s", n, strings.Join(s.first, "\n"))
	}
}

func (s *soakRun) introspected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.used))
	for id := range s.used {
		ids = append(ids, id)
	}
	return ids
}

// tokens lists every token by id.
func (s *soakRun) tokens() map[string]*tokendv1.Token {
	s.t.Helper()
	resp, err := s.ts.client.ListTokens(withSecret(s.ts.root), &tokendv1.ListTokensRequest{PageSize: 1000})
	if err != nil {
		s.t.Fatalf("ListTokens: %v", err)
	}
	if resp.GetNextPageToken() != "" {
		s.t.Fatalf("more than 1000 tokens")
	}
	out := map[string]*tokendv1.Token{}
	for _, tok := range resp.GetTokens() {
		out[tok.GetId()] = tok
	}
	return out
}

// work sends calls until ctx is done. Each worker owns its churn tokens, so
// their writes never race with each other.
func (s *soakRun) work(ctx context.Context, rng *rand.Rand, worker int, peak *atomic.Int64) {
	var churn []soakToken
	seq := 0
	for n := 0; ctx.Err() == nil && n < 100_000_000; n++ {
		if n%256 == 0 {
			if g := int64(runtime.NumGoroutine()); g > peak.Load() {
				peak.Store(g)
			}
		}
		r := rng.IntN(1000)
		tok := &s.stable[rng.IntN(len(s.stable))]
		actions := []string{soakActions[rng.IntN(len(soakActions))]}
		if rng.IntN(2) == 0 {
			actions = append(actions, soakActions[rng.IntN(len(soakActions))])
		}
		switch {
		case r < 440:
			s.introspectGRPC(tok, actions)
		case r < 880:
			s.introspectREST(tok, actions)
		case r < 890:
			s.introspectInactive(rng)
		case r < 900:
			s.badCredential(rng)
		default:
			s.write(rng, worker, &seq, &churn)
		}
	}
	// Leave the churn tokens: the restart checks them too.
}

func (s *soakRun) markUsed(id string) {
	s.mu.Lock()
	s.used[id] = true
	s.mu.Unlock()
}

func (s *soakRun) introspectGRPC(tok *soakToken, actions []string) {
	resp, err := s.ts.client.IntrospectToken(withSecret(s.ts.root), &tokendv1.IntrospectTokenRequest{Token: tok.secret, Actions: actions})
	s.counts.grpcIntrospect.Add(1)
	switch {
	case err != nil:
		s.unexpected("gRPC IntrospectToken(%s): %v", tok.name, err)
	case !resp.GetActive() || resp.GetToken().GetId() != tok.id || resp.GetAllowed() != tok.allows(actions):
		s.unexpected("gRPC IntrospectToken(%s, %q) = %v", tok.name, actions, resp)
	default:
		s.markUsed(tok.id)
	}
}

func (s *soakRun) introspectREST(tok *soakToken, actions []string) {
	body, _ := json.Marshal(map[string]any{"token": tok.secret, "actions": actions})
	status, v, err := s.post("/v1/tokens:introspect", s.ts.root, body)
	s.counts.restIntrospect.Add(1)
	switch {
	case err != nil:
		s.unexpected("REST introspect(%s): %v", tok.name, err)
	case status != http.StatusOK || v["active"] != true || str(v, "token", "id") != tok.id || v["allowed"] != tok.allows(actions):
		s.unexpected("REST introspect(%s, %q): %d %v", tok.name, actions, status, v)
	default:
		s.markUsed(tok.id)
	}
}

// introspectInactive introspects a malformed or an unknown secret: an
// answer, not an error.
func (s *soakRun) introspectInactive(rng *rand.Rand) {
	secret, want := "tkd_notavalidsecret", tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED
	if rng.IntN(2) == 0 {
		// Well-formed, but an admin secret is never introspectable.
		secret, want = s.ts.root, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND
	}
	if rng.IntN(2) == 0 {
		resp, err := s.ts.client.IntrospectToken(withSecret(s.ts.root), &tokendv1.IntrospectTokenRequest{Token: secret})
		s.counts.grpcIntrospect.Add(1)
		if err != nil || resp.GetActive() || resp.GetInactiveReason() != want {
			s.unexpected("gRPC IntrospectToken of an inactive secret: %v, %v; want %v", resp, err, want)
		}
		return
	}
	body, _ := json.Marshal(map[string]any{"token": secret})
	status, v, err := s.post("/v1/tokens:introspect", s.ts.root, body)
	s.counts.restIntrospect.Add(1)
	if err != nil || status != http.StatusOK || v["active"] != false || v["inactiveReason"] != want.String() {
		s.unexpected("REST introspect of an inactive secret: %d %v %v; want %v", status, v, err, want)
	}
}

// badCredential calls Introspect with an API token as the admin credential:
// Unauthenticated / 401, and the damping is off.
func (s *soakRun) badCredential(rng *rand.Rand) {
	s.counts.badCredential.Add(1)
	cred := s.stable[rng.IntN(len(s.stable))].secret
	if rng.IntN(2) == 0 {
		_, err := s.ts.client.IntrospectToken(withSecret(cred), &tokendv1.IntrospectTokenRequest{Token: cred})
		s.counts.grpcIntrospect.Add(1)
		if status.Code(err) != codes.Unauthenticated {
			s.unexpected("gRPC IntrospectToken with an API token as credential: %v, want Unauthenticated", err)
		}
		return
	}
	body, _ := json.Marshal(map[string]any{"token": cred})
	st, v, err := s.post("/v1/tokens:introspect", cred, body)
	s.counts.restIntrospect.Add(1)
	if err != nil || st != http.StatusUnauthorized {
		s.unexpected("REST introspect with an API token as credential: %d %v %v, want 401", st, v, err)
	}
}

// write changes one of the worker's churn tokens, over gRPC or REST.
func (s *soakRun) write(rng *rand.Rand, worker int, seq *int, churn *[]soakToken) {
	s.counts.writes.Add(1)
	ctx := withSecret(s.ts.root)
	overREST := rng.IntN(2) == 0
	r := rng.IntN(100)
	switch {
	case len(*churn) < 2 || (len(*churn) < 6 && r < 30):
		*seq++
		tok := soakToken{name: fmt.Sprintf("churn-%d-%d", worker, *seq), typ: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}
		if overREST {
			st, v, err := s.post("/v1/tokens", s.ts.root, []byte(`{"name":"`+tok.name+`"}`))
			if err != nil || st != http.StatusOK || str(v, "secret") == "" {
				s.unexpected("REST create %s: %d %v %v", tok.name, st, v, err)
				return
			}
			tok.id, tok.secret = str(v, "token", "id"), str(v, "secret")
		} else {
			resp, err := s.ts.client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: tok.name}})
			if err != nil {
				s.unexpected("gRPC CreateToken(%s): %v", tok.name, err)
				return
			}
			tok.id, tok.secret = resp.GetToken().GetId(), resp.GetSecret()
		}
		*churn = append(*churn, tok)
	case r < 60:
		tok := &(*churn)[rng.IntN(len(*churn))]
		desc := fmt.Sprintf("soaked %d", rng.Uint32())
		if overREST {
			st, v, err := s.do("PATCH", "/v1/tokens/"+tok.id, s.ts.root, []byte(`{"description":"`+desc+`"}`))
			if err != nil || st != http.StatusOK || str(v, "token", "description") != desc {
				s.unexpected("REST update %s: %d %v %v", tok.name, st, v, err)
			}
			return
		}
		resp, err := s.ts.client.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
			Token: &tokendv1.Token{Id: tok.id, Description: desc}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
		})
		if err != nil || resp.GetToken().GetDescription() != desc {
			s.unexpected("gRPC UpdateToken(%s): %v", tok.name, err)
		}
	case r < 85:
		tok := &(*churn)[rng.IntN(len(*churn))]
		old := tok.secret
		if overREST {
			st, v, err := s.post("/v1/tokens/"+tok.id+":regenerate", s.ts.root, []byte(`{}`))
			if err != nil || st != http.StatusOK || str(v, "secret") == "" {
				s.unexpected("REST regenerate %s: %d %v %v", tok.name, st, v, err)
				return
			}
			tok.secret = str(v, "secret")
		} else {
			resp, err := s.ts.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: tok.id})
			if err != nil {
				s.unexpected("gRPC RegenerateToken(%s): %v", tok.name, err)
				return
			}
			tok.secret = resp.GetSecret()
		}
		// The old secret is dead at once, the new one alive.
		for _, c := range []struct {
			secret string
			active bool
		}{{old, false}, {tok.secret, true}} {
			resp, err := s.ts.client.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: c.secret})
			if err != nil || resp.GetActive() != c.active {
				s.unexpected("IntrospectToken after regenerating %s: active=%v (%v), want %v", tok.name, resp.GetActive(), err, c.active)
			}
		}
	default:
		i := rng.IntN(len(*churn))
		tok := (*churn)[i]
		if overREST {
			if st, v, err := s.do("DELETE", "/v1/tokens/"+tok.id, s.ts.root, nil); err != nil || st != http.StatusOK {
				s.unexpected("REST delete %s: %d %v %v", tok.name, st, v, err)
				return
			}
		} else if _, err := s.ts.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: tok.id}); err != nil {
			s.unexpected("gRPC DeleteToken(%s): %v", tok.name, err)
			return
		}
		*churn = slices.Delete(*churn, i, i+1)
	}
}

func (s *soakRun) post(path, secret string, body []byte) (int, map[string]any, error) {
	return s.do("POST", path, secret, body)
}

// do sends one REST request on the soak's own client (the test helpers
// fail the test from the calling goroutine, which workers must not).
func (s *soakRun) do(method, path, secret string, body []byte) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.ts.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.rest.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("body %q: %w", data, err)
	}
	return resp.StatusCode, v, nil
}

// soakLog drops the server's log lines except warnings and errors, which
// it keeps (the first 50), so the log costs what it costs in production
// without growing with the run.
type soakLog struct {
	mu   sync.Mutex
	kept []string
}

func (l *soakLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("level=WARN")) || bytes.Contains(p, []byte("level=ERROR")) {
		l.mu.Lock()
		if len(l.kept) < 50 {
			l.kept = append(l.kept, string(p))
		}
		l.mu.Unlock()
	}
	return len(p), nil
}

func (l *soakLog) problems() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.kept, "")
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// settleGoroutines polls until at most limit goroutines run, and fails the
// test with their stacks if that does not happen within 10 seconds.
func settleGoroutines(t *testing.T, when string, limit int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > limit {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Errorf("%s: %d goroutines, want at most %d:\n%s", when, runtime.NumGoroutine(), limit, buf.String())
			return
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}
