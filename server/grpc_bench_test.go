package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
)

// BenchmarkGRPCWire measures a whole gRPC IntrospectToken call on the
// loopback interface, client and server in this process, 32 calls at a time
// on one connection, beside the grpc.health.v1 Check that the load command
// divides it by (without a credential, as the load command sends it, and
// with one: what the authorization header alone costs). It reports the CPU
// and allocations of both sides per call. It measures, it asserts nothing:
//
//	go test ./server -run '^$' -bench GRPCWire -benchmem
func BenchmarkGRPCWire(b *testing.B) {
	s, admin, secrets := introspectBenchServer(b, 1000)
	conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	tokens := tokendv1.NewTokenServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+admin)
	b.Run("introspect", func(b *testing.B) {
		defer testkit.ReportCPU(b, time.Nanosecond)()
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			req := &tokendv1.IntrospectTokenRequest{Actions: []string{"api::article.article.find"}}
			i := 0
			for pb.Next() {
				req.Token = secrets[i%len(secrets)]
				i++
				resp, err := tokens.IntrospectToken(ctx, req)
				if err != nil || !resp.GetAllowed() {
					b.Error(resp, err)
					return
				}
			}
		})
	})
	for _, h := range []struct {
		name string
		ctx  context.Context
	}{{"health", context.Background()}, {"health-with-credential", ctx}} {
		b.Run(h.name, func(b *testing.B) {
			defer testkit.ReportCPU(b, time.Nanosecond)()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				req := &healthpb.HealthCheckRequest{}
				for pb.Next() {
					if _, err := health.Check(h.ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
