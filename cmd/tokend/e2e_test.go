package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// These tests run the real binary, built once by TestMain, on :0 ports with
// a temporary data dir, and talk to it as a user would: HTTP (curl) and gRPC
// (grpcurl).

var tokendBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "tokend-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		tokendBin = filepath.Join(dir, "tokend")
		goCmd, err := exec.LookPath("go")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: no go command to build tokend:", err)
			return 1
		}
		build := exec.Command(goCmd, "build", "-o", tokendBin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: go build:", err)
			return 1
		}
		return m.Run()
	}())
}

// proc is a running tokend.
type proc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	stderr  bytes.Buffer  // everything it wrote to stderr
	lines   chan string   // stderr, line by line
	exited  chan struct{} // closed when it has exited
	waitErr error
	grpc    string // bound addresses, from its "serving" log line
	http    string
}

// stderrText returns what the process has written to stderr so far.
func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// tokendEnv is the environment of a tokend process: the test's own minus any
// TOKEND_* variable, plus extra.
func tokendEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// launch starts tokend with args and environment; it is killed when the
// test ends if it is still running.
func launch(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{lines: make(chan string, 4096), exited: make(chan struct{})}
	p.cmd = exec.Command(tokendBin, args...)
	p.cmd.Env = env
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		br := bufio.NewReader(pipe)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				p.mu.Lock()
				p.stderr.WriteString(line)
				p.mu.Unlock()
				select {
				case p.lines <- strings.TrimSuffix(line, "\n"):
				default: // nobody is waiting for lines this far in
				}
			}
			if err != nil {
				close(p.lines)
				return
			}
		}
	}()
	go func() {
		<-readDone // Wait closes the pipe: read it all first
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("tokend %s stderr:\n%s", strings.Join(args, " "), p.stderrText())
		}
	})
	return p
}

// servingLine matches the text and JSON forms of the "serving" log line.
var (
	servingText = regexp.MustCompile(`msg=serving grpc=(\S+) http=(\S+)`)
	servingJSON = regexp.MustCompile(`"msg":"serving"`)
)

// startTokend launches tokend and waits for its "serving" log line.
func startTokend(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := launch(t, env, args...)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.exited
				t.Fatalf("tokend exited before serving (%v):\n%s", p.waitErr, p.stderrText())
			}
			if m := servingText.FindStringSubmatch(line); m != nil {
				p.grpc, p.http = m[1], m[2]
				return p
			}
			if servingJSON.MatchString(line) {
				var v struct{ GRPC, HTTP string }
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("serving line %q: %v", line, err)
				}
				p.grpc, p.http = v.GRPC, v.HTTP
				return p
			}
		case <-deadline:
			t.Fatalf("tokend did not log \"serving\" in time:\n%s", p.stderrText())
		}
	}
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal: %v", err)
	}
	return p.wait(t)
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("tokend did not exit in time:\n%s", p.stderrText())
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		t.Fatalf("wait: %v", p.waitErr)
	}
	return 0
}

// call is one curl: it returns the status and the decoded JSON body.
func (p *proc) call(t *testing.T, method, path, secret string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+p.http+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if len(data) > 0 && json.Unmarshal(data, &v) != nil {
		v = map[string]any{"raw": string(data)}
	}
	return resp.StatusCode, v
}

// ok is call that must answer 200.
func (p *proc) ok(t *testing.T, method, path, secret string, body any) map[string]any {
	t.Helper()
	status, v := p.call(t, method, path, secret, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s: %d %v", method, path, status, v)
	}
	return v
}

// get reads a string at a path of keys in decoded JSON.
func get(v any, path ...string) string {
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

func timeAt(t *testing.T, v any, path ...string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, get(v, path...))
	if err != nil {
		t.Fatalf("%v: %v", path, err)
	}
	return tm
}

// tokensByID lists every token over REST.
func (p *proc) tokensByID(t *testing.T, secret string) map[string]map[string]any {
	t.Helper()
	list := p.ok(t, "GET", "/v1/tokens?page_size=1000", secret, nil)
	out := map[string]map[string]any{}
	items, _ := list["tokens"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		out[get(m, "id")] = m
	}
	return out
}

func namesOf(tokens map[string]map[string]any) []string {
	var names []string
	for _, tok := range tokens {
		names = append(names, get(tok, "name"))
	}
	slices.Sort(names)
	return names
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	rootFile := filepath.Join(dir, "root")
	args := []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-root-token-file", rootFile, "-flush-interval", "200ms"}
	env := tokendEnv()
	var secrets []string // every secret issued, for the log check
	var logs []string    // the stderr of every run

	p := startTokend(t, env, args...)

	// First start: the root secret is in the file (0600), not on stderr.
	info, err := os.Stat(rootFile)
	if err != nil {
		t.Fatalf("first start wrote no root token file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("root token file mode %v, want 0600", info.Mode().Perm())
	}
	data, _ := os.ReadFile(rootFile)
	root := strings.TrimSpace(string(data))
	if !strings.HasPrefix(root, "tkda_") {
		t.Fatalf("root token file holds %q", root)
	}
	secrets = append(secrets, root)
	first := p.tokensByID(t, root)
	if got := namesOf(first); !slices.Equal(got, []string{"Full Access", "Read Only", "Root"}) {
		t.Fatalf("first-start tokens %q", got)
	}
	for _, tok := range first {
		if tok["expireTime"] != nil {
			t.Errorf("bootstrap token %s expires: %v", get(tok, "name"), tok["expireTime"])
		}
	}

	// The tour. 1. Backends register the actions they own.
	p.ok(t, "POST", "/v1/actions:register", root, map[string]any{"actions": []map[string]string{
		{"id": "api::article.article.find", "description": "List articles"},
		{"id": "api::article.article.findOne", "description": "Read an article"},
		{"id": "api::article.article.create", "description": "Write an article"},
		{"id": "api::article.article.delete", "description": "Delete an article"},
	}})
	acts := p.ok(t, "GET", "/v1/actions", root, nil)
	if a, _ := acts["actions"].([]any); len(a) != 4 {
		t.Errorf("ListActions: %v", acts)
	}

	// 2. Tokens of each type and duration.
	type created struct {
		id, secret string
		lifespan   time.Duration
	}
	mk := func(name string, body map[string]any, lifespan time.Duration) created {
		t.Helper()
		body["name"] = name
		if lifespan > 0 {
			body["lifespan"] = fmt.Sprintf("%ds", int(lifespan.Seconds()))
		}
		v := p.ok(t, "POST", "/v1/tokens", root, body)
		c := created{get(v, "token", "id"), get(v, "secret"), lifespan}
		if !strings.HasPrefix(c.secret, "tkd_") {
			t.Fatalf("secret of %s: %q", name, c.secret)
		}
		if lifespan > 0 {
			if d := timeAt(t, v, "token", "expireTime").Sub(timeAt(t, v, "token", "createTime")); d != lifespan {
				t.Errorf("%s expires %v after creation, want %v", name, d, lifespan)
			}
		} else if v["token"].(map[string]any)["expireTime"] != nil {
			t.Errorf("%s: unlimited token with an expireTime", name)
		}
		secrets = append(secrets, c.secret)
		return c
	}
	reader := mk("reader", map[string]any{"type": "TOKEN_TYPE_READ_ONLY"}, 7*day)
	writer := mk("writer", map[string]any{"type": "TOKEN_TYPE_FULL_ACCESS"}, 30*day)
	editor := mk("editor", map[string]any{"type": "TOKEN_TYPE_CUSTOM",
		"permissions": []string{"api::article.article.find", "api::article.article.create"}}, 90*day)
	forever := mk("forever", map[string]any{}, 0)

	// 3. List.
	if got := namesOf(p.tokensByID(t, root)); !slices.Equal(got, []string{"Full Access", "Read Only", "Root", "editor", "forever", "reader", "writer"}) {
		t.Errorf("listed %q", got)
	}

	// 4. Introspect: allowed and denied.
	introspect := func(secret string, actions ...string) map[string]any {
		t.Helper()
		return p.ok(t, "POST", "/v1/tokens:introspect", root, map[string]any{"token": secret, "actions": actions})
	}
	for _, tt := range []struct {
		name    string
		secret  string
		actions []string
		allowed bool
		denied  []string
	}{
		{"ReaderFinds", reader.secret, []string{"api::article.article.find", "api::article.article.findOne"}, true, nil},
		{"ReaderCreates", reader.secret, []string{"api::article.article.find", "api::article.article.create"}, false, []string{"api::article.article.create"}},
		{"WriterDeletes", writer.secret, []string{"api::article.article.delete"}, true, nil},
		{"EditorCreates", editor.secret, []string{"api::article.article.create"}, true, nil},
		{"EditorDeletes", editor.secret, []string{"api::article.article.delete", "api::article.article.findOne"}, false, []string{"api::article.article.delete", "api::article.article.findOne"}},
	} {
		v := introspect(tt.secret, tt.actions...)
		var denied []string
		if d, ok := v["deniedActions"].([]any); ok {
			for _, a := range d {
				denied = append(denied, a.(string))
			}
		}
		if v["active"] != true || v["allowed"] != tt.allowed || !slices.Equal(denied, tt.denied) {
			t.Errorf("%s: introspect = %v, want allowed=%v denied=%q", tt.name, v, tt.allowed, tt.denied)
		}
	}

	// The same over gRPC, as grpcurl would.
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+root)
	if h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc.health.v1 Check: %v, %v", h, err)
	}
	gi, err := tokendv1.NewTokenServiceClient(conn).IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: reader.secret, Actions: []string{"api::article.article.find"}})
	if err != nil || !gi.GetActive() || !gi.GetAllowed() || gi.GetToken().GetId() != reader.id {
		t.Errorf("gRPC IntrospectToken: %v, %v", gi, err)
	}

	// 5. Regenerate: same id, old secret dead, new one active.
	regen := p.ok(t, "POST", "/v1/tokens/"+editor.id+":regenerate", root, map[string]any{})
	newEditor := get(regen, "secret")
	secrets = append(secrets, newEditor)
	if get(regen, "token", "id") != editor.id || newEditor == editor.secret || newEditor == "" {
		t.Fatalf("regenerate: %v", regen)
	}
	if v := introspect(editor.secret); v["active"] != false || v["inactiveReason"] != "INACTIVE_REASON_NOT_FOUND" {
		t.Errorf("old secret after regenerate: %v", v)
	}
	if v := introspect(newEditor, "api::article.article.create"); v["active"] != true || v["allowed"] != true {
		t.Errorf("new secret after regenerate: %v", v)
	}
	// The bootstrap "Read Only" token is usable once regenerated.
	var readOnlyID string
	for id, tok := range first {
		if get(tok, "name") == "Read Only" {
			readOnlyID = id
		}
	}
	readOnly := get(p.ok(t, "POST", "/v1/tokens/"+readOnlyID+":regenerate", root, nil), "secret")
	secrets = append(secrets, readOnly)
	if v := introspect(readOnly, "api::article.article.find"); v["active"] != true || v["allowed"] != true {
		t.Errorf("regenerated Read Only: %v", v)
	}

	// 6. Delete: dead at once.
	p.ok(t, "DELETE", "/v1/tokens/"+forever.id, root, nil)
	if v := introspect(forever.secret); v["active"] != false || v["inactiveReason"] != "INACTIVE_REASON_NOT_FOUND" {
		t.Errorf("deleted secret: %v", v)
	}
	if status, _ := p.call(t, "GET", "/v1/tokens/"+forever.id, root, nil); status != http.StatusNotFound {
		t.Errorf("GET a deleted token: %d", status)
	}

	// The last use of reader (the introspections above), as the running
	// server reports it; it must survive the restart.
	before := p.tokensByID(t, root)
	readerUsed := get(before[reader.id], "lastUsedTime")
	if readerUsed == "" {
		t.Fatalf("reader has no lastUsedTime after introspection: %v", before[reader.id])
	}

	// Stop: SIGTERM, exit 0, "stopped" logged.
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	logs = append(logs, p.stderrText())
	if !strings.Contains(p.stderrText(), "msg=stopped") {
		t.Errorf("no \"stopped\" log line after SIGTERM")
	}

	// Restart on the same data dir, without the root token file: nothing
	// is written or printed again.
	if err := os.Remove(rootFile); err != nil {
		t.Fatal(err)
	}
	p = startTokend(t, env, args...)
	if _, err := os.Stat(rootFile); !os.IsNotExist(err) {
		t.Errorf("restart wrote the root token file again (stat: %v)", err)
	}
	if regexp.MustCompile(`tkda_[0-9A-Za-z]{20,}`).MatchString(p.stderrText()) || strings.Contains(p.stderrText(), "First start") {
		t.Errorf("restart printed a root token:\n%s", p.stderrText())
	}
	after := p.tokensByID(t, root)
	if len(after) != len(before) {
		t.Errorf("%d tokens after restart, %d before", len(after), len(before))
	}
	for id, b := range before {
		a, ok := after[id]
		if !ok {
			t.Errorf("token %s (%s) lost in the restart", id, get(b, "name"))
			continue
		}
		for _, k := range []string{"name", "description", "kind", "type", "lifespan", "expireTime", "createTime", "updateTime", "secretHint"} {
			if fmt.Sprint(a[k]) != fmt.Sprint(b[k]) {
				t.Errorf("token %s: %s = %v after restart, %v before", get(b, "name"), k, a[k], b[k])
			}
		}
	}
	if got := get(after[reader.id], "lastUsedTime"); got == "" || !timeAt(t, after[reader.id], "lastUsedTime").Equal(timeAt(t, before[reader.id], "lastUsedTime")) {
		t.Errorf("reader lastUsedTime after restart %q, before %q", got, readerUsed)
	}
	if v := introspect(newEditor); v["active"] != true {
		t.Errorf("regenerated secret after restart: %v", v)
	}
	for _, dead := range []string{editor.secret, forever.secret} {
		if v := introspect(dead); v["active"] != false {
			t.Errorf("a dead secret came back after restart: %v", v)
		}
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after the second SIGTERM", code)
	}
	logs = append(logs, p.stderrText())

	// The logs: one line per request, with the caller, and no secret.
	all := strings.Join(logs, "\n")
	t.Logf("checked %d secrets against %d lines of log", len(secrets), strings.Count(all, "\n"))
	for i, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("secret #%d (%.8s…) appears in the log", i, s)
		}
	}
	var rootID string
	for id, tok := range first {
		if get(tok, "name") == "Root" {
			rootID = id
		}
	}
	if !strings.Contains(all, "caller="+rootID) {
		t.Errorf("no request log line names the caller %s", rootID)
	}
	if !regexp.MustCompile(`msg=rpc transport=grpc method=/tokend.v1.TokenService/IntrospectToken code=OK duration=\S+ caller=` + rootID).MatchString(all) {
		t.Errorf("no gRPC request log line for IntrospectToken")
	}
}

func TestEnvTwins(t *testing.T) {
	dir := t.TempDir()
	envDir, flagDir := filepath.Join(dir, "env-data"), filepath.Join(dir, "flag-data")
	rootFile := filepath.Join(dir, "root")
	p := startTokend(t, tokendEnv(
		"TOKEND_GRPC_ADDR=127.0.0.1:0",
		"TOKEND_HTTP_ADDR=256.0.0.1:bad", // the flag must win, or tokend cannot start
		"TOKEND_DATA_DIR="+envDir,
		"TOKEND_ROOT_TOKEN_FILE="+rootFile,
		"TOKEND_LOG_FORMAT=json",
	), "serve", "-http-addr", "127.0.0.1:0", "-data-dir", flagDir)
	if _, err := os.Stat(filepath.Join(flagDir, "tokend.db")); err != nil {
		t.Errorf("no database in the -data-dir directory: %v", err)
	}
	if _, err := os.Stat(envDir); !os.IsNotExist(err) {
		t.Errorf("TOKEND_DATA_DIR was used although -data-dir was given (stat: %v)", err)
	}
	data, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatalf("TOKEND_ROOT_TOKEN_FILE was not used: %v", err)
	}
	root := strings.TrimSpace(string(data))
	if status, _ := p.call(t, "GET", "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}
	if got := namesOf(p.tokensByID(t, root)); len(got) != 3 {
		t.Errorf("tokens %q", got)
	}
	// TOKEND_LOG_FORMAT=json: every log line is JSON.
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit code %d after SIGINT", code)
	}
	for _, line := range strings.Split(strings.TrimSpace(p.stderrText()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("TOKEND_LOG_FORMAT=json, but this line is not JSON: %q", line)
		}
	}
	if !strings.Contains(p.stderrText(), `"msg":"stopped"`) {
		t.Errorf("no stopped line")
	}
}

func TestCommandLine(t *testing.T) {
	t.Run("ServeHelpListsFlags", func(t *testing.T) {
		p := launch(t, tokendEnv(), "serve", "-help")
		p.wait(t)
		checkHelp(t, p.stderrText())
	})
	t.Run("ServeHelpExitsZero", func(t *testing.T) {
		// Asking for help is not an error: `tokend help` exits 0, and so
		// does every Go program using flag.ExitOnError.
		p := launch(t, tokendEnv(), "serve", "-help")
		if code := p.wait(t); code != 0 {
			t.Errorf("`tokend serve -help` exits %d, want 0", code)
		}
	})
	for _, tt := range []struct {
		name    string
		args    []string
		code    int    // -1: any non-zero
		mention string // stderr contains
	}{
		{"UnknownFlag", []string{"serve", "-bogus"}, -1, "bogus"},
		{"BadFlagValue", []string{"serve", "-flush-interval", "soon"}, -1, "flush-interval"},
		{"UnknownCommand", []string{"frobnicate"}, -1, "frobnicate"},
		{"NoCommand", nil, -1, "Usage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := launch(t, tokendEnv(), tt.args...)
			code := p.wait(t)
			switch {
			case tt.code == -1 && code == 0:
				t.Errorf("exit code 0, want non-zero")
			case tt.code >= 0 && code != tt.code:
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if !strings.Contains(p.stderrText(), tt.mention) {
				t.Errorf("stderr does not mention %q:\n%s", tt.mention, p.stderrText())
			}
		})
	}
	t.Run("StartFailureExitsNonZero", func(t *testing.T) {
		dir := t.TempDir()
		key := filepath.Join(dir, "hash.key")
		os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
		os.Chmod(key, 0o644)
		p := launch(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
			"-data-dir", filepath.Join(dir, "data"), "-hash-key-file", key)
		if code := p.wait(t); code == 0 {
			t.Errorf("exit code 0 with a world-readable hash key")
		}
		if !strings.Contains(p.stderrText(), "chmod 600") {
			t.Errorf("stderr lacks the advice:\n%s", p.stderrText())
		}
	})
}

// TestRootSecretPrintedOnce: without -root-token-file the root secret goes
// to stderr on the first start only.
func TestRootSecretPrintedOnce(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	args := []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-data-dir", dataDir}
	secretRe := regexp.MustCompile(`tkda_[0-9A-Za-z]{40,}`)

	p := startTokend(t, tokendEnv(), args...)
	printed := secretRe.FindAllString(p.stderrText(), -1)
	if len(printed) != 1 {
		t.Fatalf("first start printed %d root secrets:\n%s", len(printed), p.stderrText())
	}
	if got := namesOf(p.tokensByID(t, printed[0])); len(got) != 3 {
		t.Errorf("the printed root secret lists %q", got)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if n := strings.Count(p.stderrText(), printed[0]); n != 1 {
		t.Errorf("the root secret appears %d times on stderr, want once (printed, never logged)", n)
	}

	p = startTokend(t, tokendEnv(), args...)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if secretRe.MatchString(p.stderrText()) {
		t.Errorf("the second start printed a root secret:\n%s", p.stderrText())
	}
}
