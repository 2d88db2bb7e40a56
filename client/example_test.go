package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// The examples run against a real tokend started by TestMain: tokendAddr is
// its gRPC address, verifierSecret an admin token holding
// tokend.token.introspect, and readerSecret a read-only API token.
var tokendAddr, verifierSecret, readerSecret string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokend-client-examples")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.Start(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"),
		RootTokenFile: filepath.Join(dir, "root"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		defer srv.Shutdown(context.Background())
		b, err := os.ReadFile(filepath.Join(dir, "root"))
		if err != nil {
			log.Fatal(err)
		}
		tokendAddr = srv.GRPCAddr().String()
		admin, err := client.Dial(tokendAddr, client.WithToken(strings.TrimSpace(string(b))), client.WithInsecure())
		if err != nil {
			log.Fatal(err)
		}
		defer admin.Close()
		create := func(tok *tokendv1.Token) string {
			resp, err := admin.API().CreateToken(context.Background(), &tokendv1.CreateTokenRequest{Token: tok})
			if err != nil {
				log.Fatal(err)
			}
			return resp.GetSecret()
		}
		verifierSecret = create(&tokendv1.Token{Name: "articles backend", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
			Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.introspect"}})
		readerSecret = create(&tokendv1.Token{Name: "reader"})
		return m.Run()
	}()
	os.Exit(code)
}

func ExampleNewVerifier() {
	c, err := client.Dial(tokendAddr, client.WithToken(verifierSecret), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	v, err := client.NewVerifier(c)
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	r, err := v.Verify(context.Background(), readerSecret, "api::article.article.find", "api::article.article.delete")
	if err != nil {
		log.Fatal(err) // tokend unreachable and nothing cached: refuse the request
	}
	fmt.Println(r.Active, r.Name, r.Allowed, r.DeniedActions)

	r, _ = v.Verify(context.Background(), "tkd_not-a-token")
	fmt.Println(r.Active, r.InactiveReason)
	// Output:
	// true reader false [api::article.article.delete]
	// false INACTIVE_REASON_MALFORMED
}

func ExampleHTTPMiddleware() {
	c, err := client.Dial(tokendAddr, client.WithToken(verifierSecret), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	v, err := client.NewVerifier(c)
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	articles := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, _ := client.FromContext(r.Context())
		fmt.Fprintf(w, "articles for %s", res.Name)
	})
	guard := client.HTTPMiddleware(v, func(r *http.Request) []string {
		if r.Method == http.MethodGet {
			return []string{"api::article.article.find"}
		}
		return []string{"api::article.article.create"}
	})
	srv := httptest.NewServer(guard(articles))
	defer srv.Close()

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+readerSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(method, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(body)))
	}
	// Output:
	// GET 200  articles for reader
	// POST 403 Bearer realm="tokend", error="insufficient_scope", scope="api::article.article.create" the token may not api::article.article.create
}

func ExampleUnaryServerInterceptor() {
	c, err := client.Dial(tokendAddr, client.WithToken(verifierSecret), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	v, err := client.NewVerifier(c)
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	// Each method of the backend's own gRPC API needs one action.
	actions := func(fullMethod string) []string {
		switch fullMethod {
		case "/articles.v1.Articles/ListArticles":
			return []string{"api::article.article.find"}
		default:
			return []string{"api::article.article.update"}
		}
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(client.UnaryServerInterceptor(v, actions)),
		grpc.ChainStreamInterceptor(client.StreamServerInterceptor(v, actions)),
	)
	// Register the backend's services on srv and Serve; handlers read the
	// verified token with client.FromContext(ctx).
	srv.Stop()
}

func ExampleClient_Watch() {
	c, err := client.Dial(tokendAddr, client.WithToken(verifierSecret), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Watch(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	ev, err := stream.Recv() // a watch starts with a heartbeat carrying a resume token
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.GetType(), ev.GetResumeToken() != "")
	// Output:
	// TOKEN_EVENT_TYPE_HEARTBEAT true
}
