package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/service"
)

// BenchmarkIntrospectAnswer measures the introspection of an active API
// token as each transport's handler answers it, in process and without the
// transport itself: the gRPC method (authorization, lookup, the response
// message with the cached token view) and the REST fast path's body
// (the same, then the JSON spliced from the cached template). Tokens are
// used in turn from 1,000, and the caller checks one action. Besides ns/op
// it reports the process's CPU time per call, steadier on a shared machine.
// It measures, it asserts nothing about time:
//
//	go test ./server -run '^$' -bench IntrospectAnswer -benchmem
func BenchmarkIntrospectAnswer(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 50
	}
	s, admin, secrets := introspectBenchServer(b, n)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+admin))
	ctx, _ = service.WithCallInfo(ctx)
	for _, tr := range []struct {
		name   string
		answer func(ctx context.Context, req *tokendv1.IntrospectTokenRequest, buf []byte) ([]byte, error)
	}{
		{"grpc", func(ctx context.Context, req *tokendv1.IntrospectTokenRequest, buf []byte) ([]byte, error) {
			_, err := tokenService{Service: s.svc, views: s.httpDeps.views}.IntrospectToken(ctx, req)
			return buf, err
		}},
		{"rest", func(ctx context.Context, req *tokendv1.IntrospectTokenRequest, buf []byte) ([]byte, error) {
			in, err := s.svc.Introspect(ctx, req)
			if err != nil {
				return nil, err
			}
			return s.httpDeps.views.appendJSON(buf[:0], &in)
		}},
	} {
		b.Run(tr.name, func(b *testing.B) {
			defer testkit.ReportCPU(b, time.Nanosecond)()
			b.ReportAllocs()
			req := &tokendv1.IntrospectTokenRequest{Actions: []string{"api::article.article.find"}}
			buf := make([]byte, 0, 1024)
			i := 0
			for b.Loop() {
				req.Token = secrets[i%len(secrets)]
				var err error
				if buf, err = tr.answer(ctx, req, buf); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(tr.name+"/parallel", func(b *testing.B) {
			defer testkit.ReportCPU(b, time.Nanosecond)()
			b.ReportAllocs()
			var start atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				req := &tokendv1.IntrospectTokenRequest{Actions: []string{"api::article.article.find"}}
				buf := make([]byte, 0, 1024)
				i := int(start.Add(7919))
				for pb.Next() {
					req.Token = secrets[i%len(secrets)]
					var err error
					if buf, err = tr.answer(ctx, req, buf); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// introspectBenchServer starts a server holding n read-only API tokens and
// returns it, the root admin secret and the tokens' secrets.
func introspectBenchServer(b *testing.B, n int) (*Server, string, []string) {
	b.Helper()
	ctx := context.Background()
	s, root := startTestServer(b, Config{})
	admin := metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+root))
	secrets := make([]string, n)
	for i := range secrets {
		resp, err := s.svc.CreateToken(admin, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
			Name: fmt.Sprintf("bench %d", i), Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY,
		}})
		if err != nil {
			b.Fatal(err)
		}
		secrets[i] = resp.GetSecret()
	}
	return s, root, secrets
}
