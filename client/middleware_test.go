package client_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

func TestHTTPMiddleware(t *testing.T) {
	td := startTokend(t)
	_, reader := td.apiToken(&tokendv1.Token{Name: "reader"})
	deleted, gone := td.apiToken(&tokendv1.Token{Name: "deleted"})
	if _, err := td.admin.API().DeleteToken(context.Background(), &tokendv1.DeleteTokenRequest{Id: deleted.GetId()}); err != nil {
		t.Fatal(err)
	}
	v := td.verifier()
	guarded := client.HTTPMiddleware(v, func(r *http.Request) []string {
		if r.Method == http.MethodPost {
			return []string{"api::article.article.create"}
		}
		return []string{"api::article.article.find"}
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, ok := client.FromContext(r.Context())
		if !ok {
			t.Error("no Result in the context of a granted request")
		}
		io.WriteString(w, res.Name)
	}))
	srv := httptest.NewServer(guarded)
	defer srv.Close()

	for _, c := range []struct {
		name, method string
		auth         []string
		status       int
		challenge    string
		body         string
	}{
		{"Granted", "GET", []string{"Bearer " + reader}, 200, "", "reader"},
		{"SchemeCaseInsensitive", "GET", []string{"bearer " + reader}, 200, "", "reader"},
		{"NoCredential", "GET", nil, 401, `Bearer realm="tokend"`, ""},
		{"OtherScheme", "GET", []string{"Basic dXNlcjpwYXNz"}, 401, `Bearer realm="tokend"`, ""},
		{"Malformed", "GET", []string{"Bearer tkd_nope"}, 401, `Bearer realm="tokend", error="invalid_token", error_description="malformed"`, ""},
		{"Deleted", "GET", []string{"Bearer " + gone}, 401, `Bearer realm="tokend", error="invalid_token", error_description="unknown"`, ""},
		{"ActionDenied", "POST", []string{"Bearer " + reader}, 403, `Bearer realm="tokend", error="insufficient_scope", scope="api::article.article.create"`, ""},
		{"TwoCredentials", "GET", []string{"Bearer " + reader, "Bearer " + reader}, 400, `Bearer realm="tokend", error="invalid_request"`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL, nil)
			for _, a := range c.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || resp.Header.Get("WWW-Authenticate") != c.challenge {
				t.Fatalf("status %d, WWW-Authenticate %q; want %d, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), c.status, c.challenge)
			}
			if c.body != "" && string(body) != c.body {
				t.Fatalf("body %q, want %q", body, c.body)
			}
		})
	}

	t.Run("TokendStopped", func(t *testing.T) {
		_, cold := td.apiToken(&tokendv1.Token{Name: "cold"})
		td.stop()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+cold)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	})
}

func TestServerInterceptors(t *testing.T) {
	td := startTokend(t)
	_, reader := td.apiToken(&tokendv1.Token{Name: "reader"})
	_, writer := td.apiToken(&tokendv1.Token{Name: "writer", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	v := td.verifier()

	// A real gRPC server (the standard health service) guarded by the
	// interceptors: Check needs a read action, the Watch stream a write one.
	actions := func(method string) []string {
		if method == healthpb.Health_Watch_FullMethodName {
			return []string{"api::article.article.create"}
		}
		return []string{"api::article.article.find"}
	}
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context) {
		if r, ok := client.FromContext(ctx); ok {
			mu.Lock()
			seen = append(seen, r.Name)
			mu.Unlock()
		}
	}
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(client.UnaryServerInterceptor(v, actions),
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				record(ctx)
				return h(ctx, req)
			}),
		grpc.ChainStreamInterceptor(client.StreamServerInterceptor(v, actions),
			func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				record(ss.Context())
				return h(srv, ss)
			}),
	)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	with := func(secret string) context.Context {
		if secret == "" {
			return context.Background()
		}
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
	}
	watch := func(secret string) error {
		ctx, cancel := context.WithCancel(with(secret))
		defer cancel()
		s, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}

	for _, c := range []struct {
		name   string
		call   func() error
		want   codes.Code
		caller string
	}{
		{"UnaryGranted", func() error { _, err := hc.Check(with(reader), &healthpb.HealthCheckRequest{}); return err }, codes.OK, "reader"},
		{"UnaryNoCredential", func() error { _, err := hc.Check(with(""), &healthpb.HealthCheckRequest{}); return err }, codes.Unauthenticated, ""},
		{"UnaryMalformed", func() error { _, err := hc.Check(with("tkd_x"), &healthpb.HealthCheckRequest{}); return err }, codes.Unauthenticated, ""},
		{"StreamGranted", func() error { return watch(writer) }, codes.OK, "writer"},
		{"StreamDenied", func() error { return watch(reader) }, codes.PermissionDenied, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			if err := c.call(); status.Code(err) != c.want {
				t.Fatalf("%v, want %s", err, c.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if c.caller != "" && (len(seen) != 1 || seen[0] != c.caller) {
				t.Fatalf("handler saw results %v, want [%s]", seen, c.caller)
			}
		})
	}
	t.Run("TokendStopped", func(t *testing.T) {
		_, cold := td.apiToken(&tokendv1.Token{Name: "cold"})
		td.stop()
		if _, err := hc.Check(with(cold), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("%v, want Unavailable", err)
		}
	})
}
