package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// grpcWatch is an open WatchTokens stream whose events arrive on a channel.
type grpcWatch struct {
	events chan *tokendv1.WatchTokensResponse
	done   chan error // the stream's final error
	cancel context.CancelFunc
}

func (ts *testServer) watch(t *testing.T, secret, resume string) *grpcWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(withSecret(secret))
	stream, err := ts.client.WatchTokens(ctx, &tokendv1.WatchTokensRequest{ResumeToken: resume})
	if err != nil {
		cancel()
		t.Fatalf("WatchTokens: %v", err)
	}
	w := &grpcWatch{events: make(chan *tokendv1.WatchTokensResponse, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				w.done <- err
				return
			}
			w.events <- ev
		}
	}()
	t.Cleanup(cancel)
	return w
}

// next returns the next event that is not a heartbeat.
func (w *grpcWatch) next(t *testing.T) *tokendv1.WatchTokensResponse {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.events:
			if ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT {
				return ev
			}
		case err := <-w.done:
			t.Fatalf("watch ended: %v", err)
		case <-timeout:
			t.Fatal("no event within 10 s")
		}
	}
}

// first returns the first message of the stream, whatever its type.
func (w *grpcWatch) first(t *testing.T) *tokendv1.WatchTokensResponse {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case err := <-w.done:
		t.Fatalf("watch ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no first message within 10 s")
	}
	return nil
}

// ended waits for the stream's end and returns its error.
func (w *grpcWatch) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("watch still open after 10 s")
	}
	return nil
}

func wantEvent(t *testing.T, ev *tokendv1.WatchTokensResponse, typ tokendv1.TokenEventType, id string) {
	t.Helper()
	if ev.GetType() != typ || ev.GetTokenId() != id {
		t.Fatalf("event %v %q, want %v %q", ev.GetType(), ev.GetTokenId(), typ, id)
	}
	if ev.GetResumeToken() == "" || ev.GetEventTime() == nil {
		t.Fatalf("event without resume token or time: %v", ev)
	}
}

func TestWatchEvents(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := withSecret(ts.root)
	w := ts.watch(t, ts.root, "")
	if ev := w.first(t); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT || ev.GetResumeToken() == "" {
		t.Fatalf("first message %v, want a heartbeat with a resume token", ev)
	}

	// Admin tokens are never introspected: their changes make no event, so
	// the first event is about the API token.
	admin, _ := ts.createToken(t, &tokendv1.Token{Name: "admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if _, err := ts.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: admin.GetId()}); err != nil {
		t.Fatal(err)
	}
	api, _ := ts.createToken(t, &tokendv1.Token{Name: "api"})

	update := func(tok *tokendv1.Token, paths ...string) {
		t.Helper()
		tok.Id = api.GetId()
		if _, err := ts.client.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: tok, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}); err != nil {
			t.Fatal(err)
		}
	}
	update(&tokendv1.Token{Description: "only the description"}, "description")
	update(&tokendv1.Token{Name: "api renamed"}, "name")
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED, api.GetId())
	update(&tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, "type")
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED, api.GetId())
	update(&tokendv1.Token{Lifespan: durationpb.New(7 * 24 * time.Hour)}, "lifespan")
	ev := w.next(t)
	wantEvent(t, ev, tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED, api.GetId())
	if ev.GetExpireTime() == nil {
		t.Fatal("CHANGED after a lifespan change carries no expire_time")
	}
	if _, err := ts.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: api.GetId()}); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_SECRET_CHANGED, api.GetId())
	if _, err := ts.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: api.GetId()}); err != nil {
		t.Fatal(err)
	}
	ev = w.next(t)
	wantEvent(t, ev, tokendv1.TokenEventType_TOKEN_EVENT_TYPE_DELETED, api.GetId())

	// An event holds ids, times and the resume token: nothing else.
	b, _ := protojson.Marshal(ev)
	var fields map[string]any
	json.Unmarshal(b, &fields)
	for k := range fields {
		switch k {
		case "type", "tokenId", "resumeToken", "eventTime", "expireTime":
		default:
			t.Errorf("event has field %q: %s", k, b)
		}
	}
}

func TestWatchTimeDrivenEvents(t *testing.T) {
	// A 3 s lifespan with a warning 1 s before expiry: the test waits for
	// the events, it does not time them.
	ts := startServer(t, server.Config{Lifespans: []time.Duration{3 * time.Second}, ExpiryWarnings: []time.Duration{time.Second}})
	ctx := withSecret(ts.root)
	w := ts.watch(t, ts.root, "")
	w.first(t)
	tok, _ := ts.createToken(t, &tokendv1.Token{Name: "short", Lifespan: durationpb.New(3 * time.Second)})
	ev := w.next(t)
	wantEvent(t, ev, tokendv1.TokenEventType_TOKEN_EVENT_TYPE_EXPIRING, tok.GetId())
	if !ev.GetExpireTime().AsTime().Equal(tok.GetExpireTime().AsTime()) {
		t.Fatalf("EXPIRING expire_time %v, want %v", ev.GetExpireTime().AsTime(), tok.GetExpireTime().AsTime())
	}
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_EXPIRED, tok.GetId())

	// A rotation's grace period ending voids the previous secret.
	other, _ := ts.createToken(t, &tokendv1.Token{Name: "rotated"})
	if _, err := ts.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: other.GetId(), GracePeriod: durationpb.New(time.Second)}); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_SECRET_CHANGED, other.GetId()) // the regeneration
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_SECRET_CHANGED, other.GetId()) // the grace end
}

func TestWatchResume(t *testing.T) {
	ts := startServer(t, server.Config{WatchBuffer: 4})
	ctx := withSecret(ts.root)
	tok, _ := ts.createToken(t, &tokendv1.Token{Name: "resumed"})
	rename := func(name string) {
		t.Helper()
		if _, err := ts.client.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
			Token: &tokendv1.Token{Id: tok.GetId(), Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	w := ts.watch(t, ts.root, "")
	start := w.first(t).GetResumeToken()
	rename("a")
	resume := w.next(t).GetResumeToken()
	w.cancel()

	t.Run("MissedEventsAreDelivered", func(t *testing.T) {
		rename("b")
		rw := ts.watch(t, ts.root, resume)
		wantEvent(t, rw.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED, tok.GetId())
		rw.cancel()
	})
	t.Run("TooOldGetsReset", func(t *testing.T) {
		for _, n := range []string{"c", "d", "e", "f", "g"} {
			rename(n) // more than the 4 events the server keeps
		}
		rw := ts.watch(t, ts.root, start)
		if ev := rw.first(t); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_RESET || ev.GetResumeToken() == "" {
			t.Fatalf("first message %v, want a reset with a resume token", ev)
		}
		rename("h") // the watch goes on after the reset
		wantEvent(t, rw.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED, tok.GetId())
	})
	t.Run("TooOldButUnchangedResumes", func(t *testing.T) {
		rw := ts.watch(t, ts.root, "")
		mark := rw.first(t).GetResumeToken()
		rw.cancel()
		for _, n := range []string{"i", "j", "k", "l", "m", "h"} {
			rename(n) // more than the log holds, back to the name at mark
		}
		rw = ts.watch(t, ts.root, mark)
		if ev := rw.first(t); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT {
			t.Fatalf("first message %v, want a heartbeat: nothing a verifier caches changed", ev)
		}
	})
	t.Run("FromAnotherServerGetsReset", func(t *testing.T) {
		other := startServer(t, server.Config{})
		rw := other.watch(t, other.root, resume)
		if ev := rw.first(t); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_RESET {
			t.Fatalf("first message %v, want a reset", ev)
		}
	})
	t.Run("NotAResumeToken", func(t *testing.T) {
		for _, bad := range []string{"x", strings.Repeat("A", 100), resume + "A"} {
			stream, err := ts.client.WatchTokens(ctx, &tokendv1.WatchTokensRequest{ResumeToken: bad})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("resume token %q: %v, want InvalidArgument", bad, err)
			}
			r := ts.do(t, http.MethodGet, "/v1/tokens:watch?resumeToken="+bad, ts.root, "")
			body := checkError(t, r, http.StatusBadRequest, codes.InvalidArgument)
			if f := fieldViolations(t, body); len(f) != 1 || f[0] != "resume_token" {
				t.Errorf("field violations %v, want [resume_token]", f)
			}
		}
		checkError(t, ts.do(t, http.MethodGet, "/v1/tokens:watch?resume=x", ts.root, ""), http.StatusBadRequest, codes.InvalidArgument)
	})
}

func TestWatchAuthorization(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1, WatchHeartbeat: 50 * time.Millisecond})
	ctx := withSecret(ts.root)
	_, lacking := ts.createToken(t, &tokendv1.Token{Name: "lacking", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.find"}})
	holder, holding := ts.createToken(t, &tokendv1.Token{Name: "holding", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.introspect"}})
	for _, c := range []struct {
		name, secret string
		grpc         codes.Code
		http         int
	}{
		{"NoCredential", "", codes.Unauthenticated, http.StatusUnauthorized},
		{"LacksIntrospect", lacking, codes.PermissionDenied, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream, err := ts.client.WatchTokens(withSecret(c.secret), &tokendv1.WatchTokensRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != c.grpc {
				t.Errorf("gRPC: %v, want %s", err, c.grpc)
			}
			checkError(t, ts.do(t, http.MethodGet, "/v1/tokens:watch", c.secret, ""), c.http, c.grpc)
		})
	}
	t.Run("RevokedCredentialEndsTheWatch", func(t *testing.T) {
		w := ts.watch(t, holding, "")
		w.first(t)
		if _, err := ts.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: holder.GetId()}); err != nil {
			t.Fatal(err)
		}
		if err := w.ended(t); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("watch ended with %v, want Unauthenticated", err)
		}
	})
}

func TestWatchREST(t *testing.T) {
	ts := startServer(t, server.Config{WatchHeartbeat: 50 * time.Millisecond})
	tok, _ := ts.createToken(t, &tokendv1.Token{Name: "rest"})
	req, _ := http.NewRequest(http.MethodGet, ts.base+"/v1/tokens:watch", nil)
	req.Header.Set("Authorization", "Bearer "+ts.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() *tokendv1.WatchTokensResponse {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		var line struct{ Result json.RawMessage }
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil || line.Result == nil {
			t.Fatalf("line %s: want {\"result\": event}", lines.Bytes())
		}
		var ev tokendv1.WatchTokensResponse
		if err := protojson.Unmarshal(line.Result, &ev); err != nil {
			t.Fatalf("event %s: %v", line.Result, err)
		}
		return &ev
	}
	// Heartbeats keep coming: the connection is not cut by a write timeout.
	for i := 0; i < 3; i++ {
		if ev := next(); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT {
			t.Fatalf("message %d: %v, want a heartbeat", i, ev)
		}
	}
	if _, err := ts.client.DeleteToken(withSecret(ts.root), &tokendv1.DeleteTokenRequest{Id: tok.GetId()}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next()
		if ev.GetType() == tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT {
			continue
		}
		wantEvent(t, ev, tokendv1.TokenEventType_TOKEN_EVENT_TYPE_DELETED, tok.GetId())
		break
	}
	checkError(t, ts.do(t, http.MethodPost, "/v1/tokens:watch", ts.root, ""), http.StatusMethodNotAllowed, codes.Unimplemented)
}

func TestWatchEndsOnShutdown(t *testing.T) {
	ts := startServer(t, server.Config{})
	w := ts.watch(t, ts.root, "")
	w.first(t)
	req, _ := http.NewRequest(http.MethodGet, ts.base+"/v1/tokens:watch", nil)
	req.Header.Set("Authorization", "Bearer "+ts.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ts.shutdown(t) // returns: the open watches do not hold it
	if err := w.ended(t); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch ended with %v, want Unavailable", err)
	}
}

func TestExpiringSoonGauge(t *testing.T) {
	ts := startServer(t, server.Config{})
	ts.createToken(t, &tokendv1.Token{Name: "week", Lifespan: durationpb.New(7 * 24 * time.Hour)})
	ts.createToken(t, &tokendv1.Token{Name: "month", Lifespan: durationpb.New(30 * 24 * time.Hour)})
	ts.createToken(t, &tokendv1.Token{Name: "admin week", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Lifespan: durationpb.New(7 * 24 * time.Hour)})
	r := ts.do(t, http.MethodGet, "/metrics", "", "")
	// An admin credential about to expire is as worth a warning as an API
	// token: both count.
	if !strings.Contains(string(r.body), "\ntokend_tokens_expiring_soon 2\n") {
		t.Fatalf("/metrics lacks tokend_tokens_expiring_soon 2 (an API and an admin token expire within 7 days):\n%s", r.body)
	}
}

// TestWatchSlowWatcher: a watcher that stops reading is not queued for
// without limit. The server sends until the stream's flow-control windows
// are full (a fixed 64 KiB each way here: the client's window does not grow),
// then the watcher falls behind the server's event log and, once it reads
// again, gets a RESET instead of every event it missed.
func TestWatchSlowWatcher(t *testing.T) {
	const events = 3000 // about 300 KiB of events, far more than the windows hold
	ts := startServer(t, server.Config{WatchBuffer: 16})
	conn, err := grpc.NewClient(ts.srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(withSecret(ts.root))
	defer cancel()
	stream, err := tokendv1.NewTokenServiceClient(conn).WatchTokens(ctx, &tokendv1.WatchTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := stream.Recv(); err != nil || ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT {
		t.Fatalf("first message %v, %v", ev, err)
	}
	tok, _ := ts.createToken(t, &tokendv1.Token{Name: "churn"})
	for i := range events {
		if _, err := ts.client.UpdateToken(withSecret(ts.root), &tokendv1.UpdateTokenRequest{
			Token: &tokendv1.Token{Id: tok.GetId(), Name: fmt.Sprint("churn ", i)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for changed := 0; ; {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetType() {
		case tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED:
			if changed++; changed == events {
				t.Fatalf("the server delivered all %d events to a watcher that did not read: it queued them", events)
			}
		case tokendv1.TokenEventType_TOKEN_EVENT_TYPE_RESET:
			t.Logf("RESET after %d of %d events", changed, events)
			return
		}
	}
}

func TestWatchResumeAcrossRestart(t *testing.T) {
	dataDir := t.TempDir()
	first := startServer(t, server.Config{DataDir: dataDir})
	root := first.root
	tok, _ := first.createToken(t, &tokendv1.Token{Name: "survivor"})
	w := first.watch(t, root, "")
	current := w.first(t).GetResumeToken()
	w.cancel()
	// A second watcher stops listening before the last change.
	if _, err := first.client.UpdateToken(withSecret(root), &tokendv1.UpdateTokenRequest{
		Token: &tokendv1.Token{Id: tok.GetId(), Name: "renamed"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	}); err != nil {
		t.Fatal(err)
	}
	w = first.watch(t, root, "")
	latest := w.first(t).GetResumeToken()
	w.cancel()
	first.shutdown(t)

	second := startServer(t, server.Config{DataDir: dataDir})
	t.Run("UpToDate", func(t *testing.T) {
		rw := second.watch(t, root, latest)
		if ev := rw.first(t); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT {
			t.Fatalf("first message %v, want a heartbeat: the watcher had seen everything", ev)
		}
		if _, err := second.client.DeleteToken(withSecret(root), &tokendv1.DeleteTokenRequest{Id: tok.GetId()}); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, rw.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_DELETED, tok.GetId())
	})
	t.Run("MissedAChange", func(t *testing.T) {
		rw := second.watch(t, root, current)
		if ev := rw.first(t); ev.GetType() != tokendv1.TokenEventType_TOKEN_EVENT_TYPE_RESET {
			t.Fatalf("first message %v, want a reset: the rename before the restart was missed", ev)
		}
	})
}

// TestWatchExpiryAfterRestart: the expiry of a token loaded from the store
// at start is scheduled like that of a token created since.
func TestWatchExpiryAfterRestart(t *testing.T) {
	dataDir := t.TempDir()
	cfg := server.Config{DataDir: dataDir, Lifespans: []time.Duration{3 * time.Second}, ExpiryWarnings: []time.Duration{}}
	first := startServer(t, cfg)
	root := first.root
	tok, _ := first.createToken(t, &tokendv1.Token{Name: "short", Lifespan: durationpb.New(3 * time.Second)})
	first.shutdown(t)
	second := startServer(t, cfg)
	w := second.watch(t, root, "")
	wantEvent(t, w.next(t), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_EXPIRED, tok.GetId())
}
