package forwardauth_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// The README's snippets use these stand-ins; the tests replace them with
// the addresses and the token of the run, and fail if one is missing.
const (
	readmeListenNginx = "listen 8000;"
	readmeListenCaddy = ":8000 {"
	readmeTokend      = "127.0.0.1:8080"
	readmeUpstream    = "127.0.0.1:3000"
	readmeProxyToken  = "tkda_REPLACE_WITH_THE_PROXY_TOKEN"
)

// readmeBlock returns the fenced block that follows the marker comment
// "<!-- forward-auth NAME: ... -->" in the repository's README.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- forward-auth " + name + ":[^>]*-->\n```[a-z]*\n(.*?)```")
	m := re.FindSubmatch(data)
	if m == nil {
		t.Fatalf("README.md has no block marked <!-- forward-auth %s: ... -->", name)
	}
	return string(m[1])
}

// substitute replaces each stand-in, failing the test when the README's
// block no longer holds it.
func substitute(t *testing.T, text string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("the README's block lost %q:\n%s", pairs[i], text)
		}
		text = strings.ReplaceAll(text, pairs[i], pairs[i+1])
	}
	return text
}

// findBinary returns the path of a proxy binary, or skips the test loudly
// (fails it when TOKEND_REQUIRE_PROXIES is set).
func findBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed: the forward-auth test through %s does NOT run (apt-get install -y nginx caddy)", name, name)
	if os.Getenv("TOKEND_REQUIRE_PROXIES") != "" {
		t.Fatal(msg + "; TOKEND_REQUIRE_PROXIES is set")
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freePort returns a loopback port nothing listens on right now, for the
// proxies, which take a port in their configuration rather than a listener.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tokend is a running server with the shipped route table.
type tokend struct {
	srv    *server.Server
	client tokendv1.TokenServiceClient
	root   string
	proxy  string // an admin token holding only tokend.token.introspect
}

func startTokend(t *testing.T) *tokend {
	t.Helper()
	dir := t.TempDir()
	cfg := server.Config{
		GRPCAddr:       "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		DataDir:        filepath.Join(dir, "data"),
		RootTokenFile:  filepath.Join(dir, "root"),
		AuthRoutesFile: "routes.yaml",
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stderr:         io.Discard,
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	root, err := os.ReadFile(cfg.RootTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	td := &tokend{srv: srv, client: tokendv1.NewTokenServiceClient(conn), root: strings.TrimSpace(string(root))}
	_, td.proxy = td.create(t, &tokendv1.Token{Name: "proxy", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.introspect"}})
	return td
}

func (td *tokend) admin() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+td.root)
}

func (td *tokend) create(t *testing.T, tok *tokendv1.Token) (*tokendv1.Token, string) {
	t.Helper()
	resp, err := td.client.CreateToken(td.admin(), &tokendv1.CreateTokenRequest{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken(), resp.GetSecret()
}

// upstream is the backend behind the proxy: it answers 200 and records the
// identity headers of the last request it saw.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen http.Header
	hits int
}

func startUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen, u.hits = r.Header.Clone(), u.hits+1
		u.mu.Unlock()
		w.Write([]byte("from upstream\n"))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last() (http.Header, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen, u.hits
}

// proc is a proxy running in the foreground.
type proc struct {
	cmd    *exec.Cmd
	output bytes.Buffer
	mu     sync.Mutex
	exited chan struct{}
}

func (p *proc) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// runProxy starts a proxy and waits until addr accepts connections.
func runProxy(t *testing.T, addr string, name string, args ...string) {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.text())
		}
	})
	// Poll until the proxy listens: it has no other way to say it is ready.
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before listening:\n%s", filepath.Base(name), p.text())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s:\n%s", filepath.Base(name), addr, p.text())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// startNginx runs nginx with the README's server block inside a main
// configuration that keeps every file under a temporary prefix.
func startNginx(t *testing.T, tokendAddr, upstreamAddr, proxyToken string) string {
	t.Helper()
	bin := findBinary(t, "nginx")
	addr := freePort(t)
	block := substitute(t, readmeBlock(t, "nginx"),
		readmeListenNginx, "listen "+addr+";",
		readmeTokend, tokendAddr,
		readmeUpstream, upstreamAddr,
		readmeProxyToken, proxyToken)
	prefix := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, prefix, block)
	if err := os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	runProxy(t, addr, bin, "-e", "stderr", "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"))
	return addr
}

// startCaddy runs Caddy with the README's site block, its admin API and
// automatic HTTPS off, bound to loopback.
func startCaddy(t *testing.T, tokendAddr, upstreamAddr, proxyToken string) string {
	t.Helper()
	bin := findBinary(t, "caddy")
	addr := freePort(t)
	block := substitute(t, readmeBlock(t, "caddy"),
		readmeListenCaddy, "http://"+addr+" {\n\tbind 127.0.0.1",
		readmeTokend, tokendAddr,
		readmeUpstream, upstreamAddr,
		readmeProxyToken, proxyToken)
	dir := t.TempDir()
	conf := "{\n\tadmin off\n\tauto_https off\n}\n\n" + block
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	runProxy(t, addr, bin, "run", "--config", file, "--adapter", "caddyfile")
	return addr
}

func TestNginx(t *testing.T) {
	// nginx keeps WWW-Authenticate on a 401 only.
	testProxy(t, startNginx, false)
}

func TestCaddy(t *testing.T) {
	testProxy(t, startCaddy, true)
}

// testProxy runs the same story through a proxy started by start;
// passes403 says whether the proxy hands tokend's 403 headers to the client.
func testProxy(t *testing.T, start func(t *testing.T, tokendAddr, upstreamAddr, proxyToken string) string, passes403 bool) {
	td := startTokend(t)
	up := startUpstream(t)
	upAddr := strings.TrimPrefix(up.URL, "http://")
	tokendAddr := td.srv.HTTPAddr().String()
	proxy := "http://" + start(t, tokendAddr, upAddr, td.proxy)
	reader, readerSecret := td.create(t, &tokendv1.Token{Name: "reader", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})

	call := func(t *testing.T, method, path, secret string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, proxy+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	passes := func(t *testing.T, method, path, secret string, header ...string) http.Header {
		t.Helper()
		_, before := up.last()
		resp, body := call(t, method, path, secret, header...)
		seen, after := up.last()
		if resp.StatusCode != http.StatusOK || after != before+1 {
			t.Fatalf("%s %s: %d %q, upstream hits %d→%d; want 200 from upstream", method, path, resp.StatusCode, body, before, after)
		}
		return seen
	}
	refused := func(t *testing.T, want int, method, path, secret string, header ...string) *http.Response {
		t.Helper()
		_, before := up.last()
		resp, body := call(t, method, path, secret, header...)
		if _, after := up.last(); after != before {
			t.Errorf("%s %s reached the upstream", method, path)
		}
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %q, want %d", method, path, resp.StatusCode, body, want)
		}
		return resp
	}

	t.Run("NoToken", func(t *testing.T) {
		resp := refused(t, 401, "GET", "/api/articles", "")
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="tokend"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
	t.Run("ReadOnlyGet", func(t *testing.T) {
		seen := passes(t, "GET", "/api/articles?sort=title", readerSecret)
		if got := seen.Get("X-Token-Id"); got != reader.GetId() {
			t.Errorf("upstream saw X-Token-Id %q, want %q", got, reader.GetId())
		}
		if got := seen.Get("X-Token-Name"); got != "reader" {
			t.Errorf("upstream saw X-Token-Name %q", got)
		}
		if got := seen.Get("X-Tokend-Authorization"); got != "" {
			t.Errorf("the proxy's credential reached the upstream: %q", got)
		}
		passes(t, "GET", "/api/articles/12", readerSecret)
	})
	t.Run("ReadOnlyPost", func(t *testing.T) {
		resp := refused(t, 403, "POST", "/api/articles", readerSecret)
		if got := resp.Header.Get("WWW-Authenticate"); passes403 && !strings.Contains(got, `error="insufficient_scope"`) {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
	t.Run("UnknownToken", func(t *testing.T) {
		resp := refused(t, 401, "GET", "/api/articles", "tkd_notatoken")
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
	t.Run("RegeneratedOldSecret", func(t *testing.T) {
		tok, old := td.create(t, &tokendv1.Token{Name: "rotated", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
		passes(t, "GET", "/api/articles", old)
		resp, err := td.client.RegenerateToken(td.admin(), &tokendv1.RegenerateTokenRequest{Id: tok.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		refused(t, 401, "GET", "/api/articles", old)
		passes(t, "GET", "/api/articles", resp.GetSecret())
	})
	t.Run("UnmatchedPath", func(t *testing.T) {
		refused(t, 403, "GET", "/api/users", readerSecret)
		refused(t, 403, "GET", "/api/articles/1/comments", readerSecret)
	})
	t.Run("PublicRouteClientCannotForgeIdentity", func(t *testing.T) {
		seen := passes(t, "GET", "/api/health", "", "X-Token-Id", "forged", "X-Token-Name", "forged")
		if got := seen.Values("X-Token-Id"); len(got) > 0 && got[0] != "" {
			t.Errorf("upstream saw X-Token-Id %q on a public route", got)
		}
		if got := seen.Values("X-Token-Name"); len(got) > 0 && got[0] != "" {
			t.Errorf("upstream saw X-Token-Name %q on a public route", got)
		}
	})
	t.Run("ValidTokenClientCannotForgeIdentity", func(t *testing.T) {
		seen := passes(t, "GET", "/api/articles", readerSecret, "X-Token-Id", "forged")
		if got := seen.Values("X-Token-Id"); len(got) != 1 || got[0] != reader.GetId() {
			t.Errorf("upstream saw X-Token-Id %q, want only %q", got, reader.GetId())
		}
	})
	t.Run("ClientCannotDescribeAnotherRequest", func(t *testing.T) {
		// The client asks for a guarded route while its headers describe
		// the public one, under the names either proxy uses.
		for _, h := range [][]string{
			{"X-Forwarded-Uri", "/api/health", "X-Forwarded-Method", "GET"},
			{"X-Original-URI", "/api/health", "X-Original-Method", "GET"},
		} {
			_, before := up.last()
			resp, _ := call(t, "DELETE", "/api/articles/1", "", h...)
			if _, after := up.last(); after != before || resp.StatusCode == http.StatusOK {
				t.Errorf("with %s: %d, upstream hits %d→%d: the request went through", h[0], resp.StatusCode, before, after)
			}
		}
	})

	t.Run("WrongProxyCredential", func(t *testing.T) {
		wrong := "http://" + start(t, tokendAddr, upAddr, "tkda_wrong")
		req, _ := http.NewRequest("GET", wrong+"/api/articles", nil)
		req.Header.Set("Authorization", "Bearer "+readerSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="tokend-proxy"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
}
