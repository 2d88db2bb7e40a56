package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// TestArticlesAPI runs the example, wiring included, against a real tokend.
func TestArticlesAPI(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.Start(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"),
		RootTokenFile: filepath.Join(dir, "root"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	root, err := os.ReadFile(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.Dial(srv.GRPCAddr().String(), client.WithToken(strings.TrimSpace(string(root))), client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	create := func(tok *tokendv1.Token) (string, string) {
		t.Helper()
		resp, err := admin.API().CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetToken().GetId(), resp.GetSecret()
	}
	_, backend := create(&tokendv1.Token{Name: "articles backend", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.introspect", "tokend.action.register"}})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- run(runCtx, srv.GRPCAddr().String(), backend, lis) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	base := "http://" + lis.Addr().String()

	// The example registered its actions at start: a custom token can
	// list them once they are there.
	var writerID, writer string
	deadline := time.Now().Add(10 * time.Second)
	for writer == "" {
		resp, err := admin.API().CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
			Name: "writer", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{actionCreate, actionFind, actionDelete}}})
		switch {
		case err == nil:
			writerID, writer = resp.GetToken().GetId(), resp.GetSecret()
		case time.Now().After(deadline):
			t.Fatalf("actions never registered: %v", err)
		default:
			time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	_, reader := create(&tokendv1.Token{Name: "reader"})

	call := func(method, path, secret, body string) (int, string, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), out
	}
	for _, c := range []struct {
		name, method, path, secret, body string
		status                           int
		challenge                        string
	}{
		{"NoToken", "GET", "/api/articles", "", "", 401, `Bearer realm="tokend"`},
		{"ReaderCannotCreate", "POST", "/api/articles", reader, `{"title":"x"}`, 403, `Bearer realm="tokend", error="insufficient_scope", scope="api::article.article.create"`},
		{"WriterCreates", "POST", "/api/articles", writer, `{"title":"Hello"}`, 201, ""},
		{"ReaderLists", "GET", "/api/articles", reader, "", 200, ""},
		{"ReaderReadsOne", "GET", "/api/articles/1", reader, "", 200, ""},
		{"WriterCannotReadOne", "GET", "/api/articles/1", writer, "", 403, `Bearer realm="tokend", error="insufficient_scope", scope="api::article.article.findOne"`},
		{"WriterCannotUpdate", "PUT", "/api/articles/1", writer, `{"title":"Bye"}`, 403, `Bearer realm="tokend", error="insufficient_scope", scope="api::article.article.update"`},
		{"WriterDeletes", "DELETE", "/api/articles/1", writer, "", 204, ""},
		{"Malformed", "GET", "/api/articles", "tkd_nope", "", 401, `Bearer realm="tokend", error="invalid_token", error_description="malformed"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, challenge, body := call(c.method, c.path, c.secret, c.body)
			if status != c.status || challenge != c.challenge {
				t.Fatalf("%d %q, want %d %q (body %v)", status, challenge, c.status, c.challenge, body)
			}
			if c.name == "WriterCreates" {
				if data, _ := body["data"].(map[string]any); data["author"] != "writer" {
					t.Fatalf("article %v, want author writer (the verified token)", body)
				}
			}
		})
	}

	t.Run("DeletedTokenRefused", func(t *testing.T) {
		if _, err := admin.API().DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: writerID}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, _, _ := call("GET", "/api/articles", writer, "")
			if status == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deleted token still served (%d)", status)
			}
			time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
		}
	})
}
