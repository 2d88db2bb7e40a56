package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/server"
)

// This file is the shared harness of the server tests: the real wiring
// (server.Start on 127.0.0.1:0 ports, a bbolt file under t.TempDir()), a real
// gRPC client and plain net/http requests.

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testServer is a running tokend with clients for both transports.
type testServer struct {
	srv     *server.Server
	cfg     server.Config
	root    string // the root admin secret; "" when the store was bootstrapped before
	base    string // http://host:port
	conn    *grpc.ClientConn
	client  tokendv1.TokenServiceClient
	logs    *testkit.SyncBuffer // everything the server logged
	stderr  *testkit.SyncBuffer // what it printed outside the log
	stopped bool
}

// startServer starts tokend with cfg, filling in loopback :0 addresses, a
// temporary data dir and root token file, and buffers for the log and
// stderr. The server is shut down when the test ends.
func startServer(t testing.TB, cfg server.Config) *testServer {
	t.Helper()
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
	}
	if cfg.RootTokenFile == "" {
		cfg.RootTokenFile = filepath.Join(t.TempDir(), "root-token")
	}
	ts := &testServer{logs: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}}
	if cfg.Logger == nil {
		cfg.Logger = newTextLogger(ts.logs)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = ts.stderr
	}
	ts.cfg = cfg
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	ts.srv = srv
	t.Cleanup(func() { ts.shutdown(t) })
	ts.base = "http://" + srv.HTTPAddr().String()
	if data, err := os.ReadFile(cfg.RootTokenFile); err == nil {
		ts.root = strings.TrimSpace(string(data))
	}
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ts.conn = conn
	ts.client = tokendv1.NewTokenServiceClient(conn)
	return ts
}

// shutdown stops the server (once) and fails the test if that fails.
func (ts *testServer) shutdown(t testing.TB) {
	t.Helper()
	if ts.stopped {
		return
	}
	ts.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// withSecret returns a context carrying secret as the gRPC credential.
func withSecret(secret string) context.Context {
	ctx := context.Background()
	if secret == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
}

// restResponse is one HTTP answer.
type restResponse struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value, failing the test when it is
// not JSON.
func (r *restResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response body is not a JSON object (%v): %s", err, r.body)
	}
	return v
}

// do sends one request. secret "" sends no Authorization header; extra
// headers are added as given.
func (ts *testServer) do(t *testing.T, method, path, secret, body string, header ...string) *restResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) *restResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return &restResponse{status: resp.StatusCode, header: resp.Header, body: data}
}

// mustOK fails the test unless the answer is 200, and returns its JSON.
func mustOK(t *testing.T, r *restResponse) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body: %s", r.status, r.body)
	}
	return r.json(t)
}

// checkError checks an error answer: the HTTP status, and a JSON body of
// exactly {code, message, details} whose code is the gRPC code.
func checkError(t *testing.T, r *restResponse, wantStatus int, wantCode codes.Code) map[string]any {
	t.Helper()
	if r.status != wantStatus {
		t.Errorf("status %d, want %d; body: %s", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body is not a JSON object (%v): %s", err, r.body)
	}
	for _, k := range []string{"code", "message", "details"} {
		if _, ok := body[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, r.body)
		}
	}
	if len(body) != 3 {
		t.Errorf("error body has keys other than code, message, details: %s", r.body)
	}
	var code int
	if err := json.Unmarshal(body["code"], &code); err != nil || codes.Code(code) != wantCode {
		t.Errorf("error code %s, want %d (%s)", body["code"], wantCode, wantCode)
	}
	var msg string
	if err := json.Unmarshal(body["message"], &msg); err != nil || msg == "" {
		t.Errorf("error message %s: want a non-empty string", body["message"])
	}
	var details []any
	if err := json.Unmarshal(body["details"], &details); err != nil {
		t.Errorf("error details %s: want an array", body["details"])
	}
	return r.json(t)
}

// fieldViolations returns the fields named by the google.rpc.BadRequest
// details of a REST error body.
func fieldViolations(t *testing.T, body map[string]any) []string {
	t.Helper()
	var fields []string
	details, _ := body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if m["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		vs, _ := m["fieldViolations"].([]any)
		for _, v := range vs {
			vm, _ := v.(map[string]any)
			f, _ := vm["field"].(string)
			fields = append(fields, f)
		}
	}
	return fields
}

// str reads a string at a path of keys in decoded JSON.
func str(v any, path ...string) string {
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// createToken creates a token over gRPC with the root credential and returns
// it with its secret.
func (ts *testServer) createToken(t *testing.T, tok *tokendv1.Token) (*tokendv1.Token, string) {
	t.Helper()
	resp, err := ts.client.CreateToken(withSecret(ts.root), &tokendv1.CreateTokenRequest{Token: tok})
	if err != nil {
		t.Fatalf("CreateToken(%q): %v", tok.GetName(), err)
	}
	return resp.GetToken(), resp.GetSecret()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}
