package client_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// startServer runs a real tokend on loopback ports and returns its gRPC
// address and root admin secret.
func startServer(t *testing.T) (addr, root string) {
	t.Helper()
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root.token")
	srv, err := server.Start(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		DataDir: filepath.Join(dir, "data"), RootTokenFile: rootFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	b, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	return srv.GRPCAddr().String(), strings.TrimSpace(string(b))
}

func TestDial(t *testing.T) {
	addr, root := startServer(t)
	ctx := context.Background()

	t.Run("NeedsATransportChoice", func(t *testing.T) {
		if _, err := client.Dial(addr, client.WithToken(root)); err == nil {
			t.Fatal("Dial without WithTLS or WithInsecure succeeded")
		}
		if _, err := client.Dial(addr, client.WithTLS(nil), client.WithInsecure()); err == nil {
			t.Fatal("Dial with both WithTLS and WithInsecure succeeded")
		}
	})

	t.Run("CarriesTheCredential", func(t *testing.T) {
		c, err := client.Dial(addr, client.WithToken(root), client.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.API().ListTokens(ctx, &tokendv1.ListTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetTokens()) == 0 {
			t.Fatal("root token cannot list the bootstrapped tokens")
		}
		// An admin token presented to Introspect is reported as not found.
		ir, err := c.Introspect(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if ir.GetActive() {
			t.Fatal("admin secret introspected as an active API token")
		}
	})

	t.Run("WithoutCredential", func(t *testing.T) {
		c, err := client.Dial(addr, client.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.API().ListTokens(ctx, &tokendv1.ListTokensRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("ListTokens without a credential: %v, want Unauthenticated", err)
		}
	})
}
