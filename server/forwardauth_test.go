package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

const testRoutes = `routes:
  - {method: "*", path: /api/health, public: true}
  - {method: GET, path: /api/articles, actions: [api::article.article.find]}
  - {method: GET, path: "/api/articles/{id}", actions: [api::article.article.findOne]}
  - {method: POST, path: /api/articles, actions: [api::article.article.create]}
  - {method: GET, path: /api/me, actions: []}
`

func startForwardAuth(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(testRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.AuthRoutesFile = routes
	return startServer(t, cfg)
}

// auth asks /v1/auth about method and uri as Caddy would (X-Forwarded-*),
// with proxy as the proxy's credential and client as the client's
// Authorization value ("" sends none).
func (ts *testServer) auth(t *testing.T, proxy, method, uri, client string, header ...string) *restResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.base+"/v1/auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	if proxy != "" {
		req.Header.Set("X-Tokend-Authorization", "Bearer "+proxy)
	}
	if method != "" {
		req.Header.Set("X-Forwarded-Method", method)
	}
	if uri != "" {
		req.Header.Set("X-Forwarded-Uri", uri)
	}
	if client != "" {
		req.Header.Set("Authorization", client)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return send(t, req)
}

func TestForwardAuth(t *testing.T) {
	ts := startForwardAuth(t, server.Config{})
	reader, readerSecret := ts.createToken(t, &tokendv1.Token{Name: "reader", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	_, adminSecret := ts.createToken(t, &tokendv1.Token{Name: "an admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	deleted, deletedSecret := ts.createToken(t, &tokendv1.Token{Name: "deleted", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	if _, err := ts.client.DeleteToken(withSecret(ts.root), &tokendv1.DeleteTokenRequest{Id: deleted.GetId()}); err != nil {
		t.Fatal(err)
	}
	proxy := ts.root
	bearer := func(s string) string { return "Bearer " + s }

	cases := []struct {
		name                 string
		method, uri, client  string
		header               []string
		wantStatus           int
		wantAuthenticate     string
		wantIdentity, wantNo bool // identity headers set / none at all
	}{
		{name: "ReadOnlyFind", method: "GET", uri: "/api/articles", client: bearer(readerSecret), wantStatus: 200, wantIdentity: true},
		{name: "ReadOnlyFindOneWithQuery", method: "GET", uri: "/api/articles/7?populate=*", client: bearer(readerSecret), wantStatus: 200, wantIdentity: true},
		{name: "SchemeCaseInsensitive", method: "GET", uri: "/api/articles", client: "bearer " + readerSecret, wantStatus: 200, wantIdentity: true},
		{name: "AnyValidToken", method: "GET", uri: "/api/me", client: bearer(readerSecret), wantStatus: 200, wantIdentity: true},
		{name: "ReadOnlyCreate", method: "POST", uri: "/api/articles", client: bearer(readerSecret), wantStatus: 403, wantAuthenticate: `Bearer realm="tokend", error="insufficient_scope"`, wantNo: true},
		{name: "NoRoute", method: "GET", uri: "/api/users", client: bearer(readerSecret), wantStatus: 403, wantAuthenticate: `Bearer realm="tokend", error="insufficient_scope"`, wantNo: true},
		{name: "NoRouteNoToken", method: "GET", uri: "/api/users", wantStatus: 403, wantAuthenticate: `Bearer realm="tokend", error="insufficient_scope"`, wantNo: true},
		{name: "DotSegmentsDenied", method: "GET", uri: "/api/health/../articles", client: bearer(readerSecret), wantStatus: 403, wantNo: true, wantAuthenticate: `Bearer realm="tokend", error="insufficient_scope"`},
		{name: "NoToken", method: "GET", uri: "/api/articles", wantStatus: 401, wantAuthenticate: `Bearer realm="tokend"`, wantNo: true},
		{name: "NotBearer", method: "GET", uri: "/api/articles", client: "Basic dXNlcjpwYXNz", wantStatus: 401, wantAuthenticate: `Bearer realm="tokend", error="invalid_token"`, wantNo: true},
		{name: "Malformed", method: "GET", uri: "/api/articles", client: bearer("tkd_nope"), wantStatus: 401, wantAuthenticate: `Bearer realm="tokend", error="invalid_token"`, wantNo: true},
		{name: "Deleted", method: "GET", uri: "/api/articles", client: bearer(deletedSecret), wantStatus: 401, wantAuthenticate: `Bearer realm="tokend", error="invalid_token"`, wantNo: true},
		{name: "AdminTokenAsClient", method: "GET", uri: "/api/articles", client: bearer(adminSecret), wantStatus: 401, wantAuthenticate: `Bearer realm="tokend", error="invalid_token"`, wantNo: true},
		{name: "TwoAuthorizations", method: "GET", uri: "/api/articles", client: bearer(readerSecret), header: []string{"Authorization", bearer(readerSecret)}, wantStatus: 401, wantAuthenticate: `Bearer realm="tokend", error="invalid_token"`, wantNo: true},
		{name: "PublicNoToken", method: "POST", uri: "/api/health", wantStatus: 200, wantIdentity: false},
		{name: "PublicBadToken", method: "GET", uri: "/api/health", client: bearer("junk"), wantStatus: 200, wantIdentity: false},
		{name: "NginxHeaders", header: []string{"X-Original-Method", "GET", "X-Original-URI", "/api/articles"}, client: bearer(readerSecret), wantStatus: 200, wantIdentity: true},
		{name: "BothHeaderSetsAgree", method: "GET", uri: "/api/articles", header: []string{"X-Original-Method", "GET", "X-Original-URI", "/api/articles"}, client: bearer(readerSecret), wantStatus: 200, wantIdentity: true},
		{name: "SpoofedURIDisagrees", method: "GET", uri: "/api/articles", header: []string{"X-Original-URI", "/api/health"}, wantStatus: 400, wantNo: true},
		{name: "SpoofedMethodDisagrees", method: "GET", uri: "/api/articles", header: []string{"X-Original-Method", "POST"}, client: bearer(readerSecret), wantStatus: 400, wantNo: true},
		{name: "TwoURIs", method: "GET", uri: "/api/articles", header: []string{"X-Forwarded-Uri", "/api/health"}, wantStatus: 400, wantNo: true},
		{name: "MissingMethod", uri: "/api/articles", client: bearer(readerSecret), wantStatus: 400, wantNo: true},
		{name: "MissingURI", method: "GET", client: bearer(readerSecret), wantStatus: 400, wantNo: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.auth(t, proxy, c.method, c.uri, c.client, c.header...)
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d; body %q", r.status, c.wantStatus, r.body)
			}
			if got := r.header.Get("WWW-Authenticate"); got != c.wantAuthenticate {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.wantAuthenticate)
			}
			if r.status != 400 && len(r.body) != 0 {
				t.Errorf("body %q, want none", r.body)
			}
			if r.status == 400 && !strings.Contains(string(r.body), "X-") {
				t.Errorf("400 body %q does not name the header at fault", r.body)
			}
			for _, h := range []string{"X-Token-Id", "X-Token-Name", "X-Token-Kind", "X-Token-Type"} {
				values, present := r.header[h]
				switch {
				case c.wantNo && present:
					t.Errorf("%s sent on a %d", h, r.status)
				case !c.wantNo && !present:
					t.Errorf("%s missing on a 200: a proxy copying it would pass the client's own upstream", h)
				case !c.wantNo && !c.wantIdentity && values[0] != "":
					t.Errorf("%s = %q with no token checked", h, values[0])
				}
			}
			if c.wantIdentity {
				want := map[string]string{"X-Token-Id": reader.GetId(), "X-Token-Name": "reader",
					"X-Token-Kind": "TOKEN_KIND_API", "X-Token-Type": "TOKEN_TYPE_READ_ONLY"}
				for h, v := range want {
					if got := r.header.Get(h); got != v {
						t.Errorf("%s = %q, want %q", h, got, v)
					}
				}
			}
			if strings.Contains(string(r.body), readerSecret) || strings.Contains(r.header.Get("WWW-Authenticate"), "tkd") {
				t.Error("answer holds a secret")
			}
		})
	}

	t.Run("UseCounted", func(t *testing.T) {
		got, err := ts.client.GetToken(withSecret(ts.root), &tokendv1.GetTokenRequest{Id: reader.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetToken().GetLastUsedTime() == nil {
			t.Error("a token let through by forward auth has no last-used time")
		}
	})

	t.Run("RegeneratedOldSecret", func(t *testing.T) {
		tok, old := ts.createToken(t, &tokendv1.Token{Name: "rotating", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
		if r := ts.auth(t, proxy, "GET", "/api/articles", bearer(old)); r.status != 200 {
			t.Fatalf("before regenerate: %d", r.status)
		}
		resp, err := ts.client.RegenerateToken(withSecret(ts.root), &tokendv1.RegenerateTokenRequest{Id: tok.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.auth(t, proxy, "GET", "/api/articles", bearer(old)); r.status != 401 {
			t.Errorf("old secret after regenerate: %d, want 401", r.status)
		}
		if r := ts.auth(t, proxy, "GET", "/api/articles", bearer(resp.GetSecret())); r.status != 200 {
			t.Errorf("new secret: %d, want 200", r.status)
		}
	})

	t.Run("EnvoyPathForm", func(t *testing.T) {
		cases := []struct {
			name, method, path string
			header             []string
			want               int
		}{
			{"Find", "GET", "/api/articles", nil, 200},
			{"FindOneWithQuery", "GET", "/api/articles/3?x=1", nil, 200},
			{"Create", "POST", "/api/articles", nil, 403},
			{"NoRoute", "GET", "/api/users", nil, 403},
			{"EncodedSlash", "GET", "/api%2Farticles", nil, 403},
			{"HeadersToo", "GET", "/api/articles", []string{"X-Forwarded-Uri", "/api/articles"}, 400},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				req, _ := http.NewRequest(c.method, ts.base+"/v1/auth"+c.path, nil)
				req.Header.Set("X-Tokend-Authorization", bearer(proxy))
				req.Header.Set("Authorization", bearer(readerSecret))
				for i := 0; i+1 < len(c.header); i += 2 {
					req.Header.Set(c.header[i], c.header[i+1])
				}
				r := send(t, req)
				if r.status != c.want {
					t.Fatalf("status %d, want %d; body %q", r.status, c.want, r.body)
				}
				if c.want == 200 && r.header.Get("X-Token-Id") != reader.GetId() {
					t.Errorf("X-Token-Id %q", r.header.Get("X-Token-Id"))
				}
			})
		}
	})

	t.Run("QueryOnAuthIgnored", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, ts.base+"/v1/auth?page=2&x=y", nil)
		req.Header.Set("X-Tokend-Authorization", bearer(proxy))
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/api/articles?page=2&x=y")
		req.Header.Set("Authorization", bearer(readerSecret))
		if r := send(t, req); r.status != 200 {
			t.Errorf("status %d, want 200", r.status)
		}
	})
}

// TestForwardAuthProxyCredential checks that only a proxy holding an admin
// token allowed to introspect can use /v1/auth, and that a refused proxy
// gets a 401 that names its own credential, with a log line, and never a
// verdict on the client's token.
func TestForwardAuthProxyCredential(t *testing.T) {
	ts := startForwardAuth(t, server.Config{AuthFailureLimit: 2})
	_, readerSecret := ts.createToken(t, &tokendv1.Token{Name: "reader", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	_, finder := ts.createToken(t, &tokendv1.Token{Name: "finder", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.find"}})
	_, introspector := ts.createToken(t, &tokendv1.Token{Name: "proxy", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.introspect"}})
	client := "Bearer " + readerSecret

	cases := []struct{ name, proxy string }{
		{"Missing", ""},
		{"Unknown", "tkda_unknown"},
		{"APIToken", readerSecret},
		{"LacksIntrospect", finder},
		// The fourth and later failures from one address are damped:
		// still a 401 naming the proxy's credential, never a 429, which
		// nginx would turn into a 500 for every client behind it.
		{"Damped", "tkda_unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, uri := range []string{"/api/articles", "/api/health", "/api/users"} {
				r := ts.auth(t, c.proxy, "GET", uri, client)
				if r.status != http.StatusUnauthorized {
					t.Fatalf("%s: status %d, want 401", uri, r.status)
				}
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="tokend-proxy"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if !strings.Contains(string(r.body), "X-Tokend-Authorization") {
					t.Errorf("body %q does not say it is the proxy's credential", r.body)
				}
				if _, ok := r.header["X-Token-Id"]; ok {
					t.Error("identity headers on a refused proxy")
				}
			}
		})
	}
	if r := ts.auth(t, "tkda_unknown", "GET", "/api/articles", client); !strings.Contains(string(r.body), "too many failed") {
		t.Errorf("damped answer %q does not say the address is damped", r.body)
	}
	if !strings.Contains(ts.logs.String(), "forward auth: the proxy's credential was refused") {
		t.Errorf("no log line an operator would find:\n%s", ts.logs.String())
	}
	t.Run("ValidProxyFromDampedAddress", func(t *testing.T) {
		if r := ts.auth(t, introspector, "GET", "/api/articles", client); r.status != http.StatusOK {
			t.Errorf("status %d, want 200: damping must not refuse a valid credential", r.status)
		}
	})
	if strings.Contains(ts.logs.String(), readerSecret) || strings.Contains(ts.logs.String(), introspector) {
		t.Error("a secret reached the log")
	}
}

func TestForwardAuthWithoutRouteTable(t *testing.T) {
	ts := startServer(t, server.Config{})
	_, secret := ts.createToken(t, &tokendv1.Token{Name: "reader", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	if r := ts.auth(t, ts.root, "GET", "/", "Bearer "+secret); r.status != http.StatusForbidden {
		t.Errorf("status %d, want 403: no table denies every request", r.status)
	}
	if err := ts.srv.ReloadAuthRoutes(); err == nil || !strings.Contains(err.Error(), "-auth-routes") {
		t.Errorf("ReloadAuthRoutes without a file: %v", err)
	}
}

func TestForwardAuthReload(t *testing.T) {
	ts := startForwardAuth(t, server.Config{})
	if err := os.WriteFile(ts.cfg.AuthRoutesFile, []byte("routes:\n  - {method: GET, path: /only, public: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.ReloadAuthRoutes(); err != nil {
		t.Fatal(err)
	}
	if r := ts.auth(t, ts.root, "GET", "/only", ""); r.status != 200 {
		t.Errorf("new route: %d, want 200", r.status)
	}
	if r := ts.auth(t, ts.root, "GET", "/api/health", ""); r.status != 403 {
		t.Errorf("old route: %d, want 403", r.status)
	}
	if err := os.WriteFile(ts.cfg.AuthRoutesFile, []byte("routes:\n  - {method: GET, path: /only}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := ts.srv.ReloadAuthRoutes()
	if err == nil || !strings.Contains(err.Error(), "routes.yaml:2: rule 1: missing actions") || !strings.Contains(err.Error(), "previous ones stay") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if r := ts.auth(t, ts.root, "GET", "/only", ""); r.status != 200 {
		t.Errorf("after a refused reload: %d, want 200 from the previous table", r.status)
	}
}
