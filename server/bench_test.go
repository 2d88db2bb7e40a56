package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/server"
)

// BenchmarkAdminCalls measures REST and gRPC admin calls end to end on a
// real server over loopback, client included, 8 at a time: what the one
// request pipeline (REST through the gateway and the in-process gRPC
// server) costs beside a direct gRPC call. Besides ns/op it reports the
// process's CPU time per call (cpu-µs/op), which neighbours on a shared
// machine disturb far less than the wall time. It measures, it asserts
// nothing about time:
//
//	go test ./server -run '^$' -bench AdminCalls -benchmem
func BenchmarkAdminCalls(b *testing.B) {
	ts := startServer(b, server.Config{AuthFailureLimit: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	root, srv, client := ts.root, ts.srv, ts.client
	ctx := withSecret(root)
	list, err := client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	id := list.GetTokens()[0].GetId()
	base := "http://" + srv.HTTPAddr().String()
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	rest := func(b *testing.B, path string) {
		defer testkit.ReportCPU(b, time.Microsecond)()
		b.SetParallelism(4) // 8 workers on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", base+path, nil)
				req.Header.Set("Authorization", "Bearer "+root)
				resp, err := httpClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("GET %s: %d", path, resp.StatusCode)
					return
				}
			}
		})
	}
	grpcCall := func(b *testing.B, call func() error) {
		defer testkit.ReportCPU(b, time.Microsecond)()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("REST/GetToken", func(b *testing.B) { rest(b, "/v1/tokens/"+id) })
	b.Run("REST/ListTokens", func(b *testing.B) { rest(b, "/v1/tokens?page_size=10") })
	b.Run("GRPC/GetToken", func(b *testing.B) {
		grpcCall(b, func() error { _, err := client.GetToken(ctx, &tokendv1.GetTokenRequest{Id: id}); return err })
	})
	b.Run("GRPC/ListTokens", func(b *testing.B) {
		grpcCall(b, func() error {
			_, err := client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 10})
			return err
		})
	})
}
