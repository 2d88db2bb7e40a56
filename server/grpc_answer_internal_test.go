package server

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
)

// TestGRPCAnswersFollowChanges: the gRPC server sends most introspection
// answers as bytes encoded once and kept with the token's view. Over the
// wire they must say exactly what the service's own answer says, call after
// call, while what the answer shows moves: the last use (once a second),
// the end of a grace period, a previous secret, a denied action, an
// inactive token.
func TestGRPCAnswersFollowChanges(t *testing.T) {
	clock := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s, root := startTestServer(t, Config{now: clock.Now})
	conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := tokendv1.NewTokenServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+root)
	admin := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+root))

	if _, err := s.svc.RegisterActions(admin, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find"}, {Id: "api::article.article.delete"},
	}}); err != nil {
		t.Fatal(err)
	}
	created, err := s.svc.CreateToken(admin, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
		Name: "custom", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"api::article.article.find"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	previous := created.GetSecret()
	regen, err := s.svc.RegenerateToken(admin, &tokendv1.RegenerateTokenRequest{Id: created.GetToken().GetId(), GracePeriod: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	current := regen.GetSecret()

	// check asks over gRPC, then asks the service itself (which records a
	// use at the same clock time, to the same second) and compares.
	check := func(step, secret string, actions ...string) {
		t.Helper()
		req := &tokendv1.IntrospectTokenRequest{Token: secret, Actions: actions}
		got, err := client.IntrospectToken(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		in, err := s.svc.CheckToken(secret, actions)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if diff := cmp.Diff(in.Response(), got, protocmp.Transform()); diff != "" {
			t.Errorf("%s: gRPC answer differs from the service's (-service +gRPC):\n%s", step, diff)
		}
	}
	for i := range 3 {
		check("current secret", current, "api::article.article.find")
		check("previous secret", previous)
		check("denied action", current, "api::article.article.find", "api::article.article.delete")
		check("no actions", current)
		if i == 0 {
			check("malformed", "not a secret")
		}
		clock.Advance(1500 * time.Millisecond) // a new last use to show
	}
	clock.Advance(time.Hour) // the grace period ends
	check("current secret after the grace period", current, "api::article.article.find")
	check("previous secret after the grace period", previous)
	if _, err := s.svc.DeleteToken(admin, &tokendv1.DeleteTokenRequest{Id: created.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	check("deleted", current)
}
