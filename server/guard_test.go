package server_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// These tests hold the rules on writes to admin tokens on a real server,
// over both transports: an admin token never outlives the credential that
// creates, edits or regenerates it, and the last unlimited full-access admin
// token cannot be removed, downgraded or given an expiry.

// checkRefused fails unless err is a gRPC error with code whose message
// holds want.
func checkRefused(t *testing.T, what string, err error, code codes.Code, want string) {
	t.Helper()
	if st, _ := status.FromError(err); st.Code() != code || !strings.Contains(st.Message(), want) {
		t.Errorf("%s over gRPC: %v, want %s mentioning %q", what, err, code, want)
	}
}

// checkRESTRefused fails unless r is an error answer with that status and
// code whose message holds want.
func checkRESTRefused(t *testing.T, what string, r *restResponse, httpStatus int, code codes.Code, want string) {
	t.Helper()
	body := checkError(t, r, httpStatus, code)
	if msg := str(body, "message"); !strings.Contains(msg, want) {
		t.Errorf("%s over REST: message %q, want it to mention %q", what, msg, want)
	}
}

func TestAdminTokenCannotOutliveCaller(t *testing.T) {
	ts := startServer(t, server.Config{})
	// Created before the limited caller, so it expires a little earlier
	// than the caller: the caller may touch it, but regenerating it would
	// restart its clock past the caller's expiry.
	older, olderSecret := ts.createToken(t, &tokendv1.Token{Name: "Older week", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"tokend.token.find"}, Lifespan: durationpb.New(week)})
	weekTok, weekSecret := ts.createToken(t, &tokendv1.Token{Name: "Week admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Lifespan: durationpb.New(week),
		Permissions: []string{"tokend.token.create", "tokend.token.find", "tokend.token.findOne", "tokend.token.regenerate", "tokend.token.update"}})
	api, _ := ts.createToken(t, &tokendv1.Token{Name: "Some API token"})
	const outlive = "may not outlive"

	t.Run("ExtendOwnLifespan", func(t *testing.T) {
		_, err := ts.client.UpdateToken(withSecret(weekSecret), &tokendv1.UpdateTokenRequest{
			Token: &tokendv1.Token{Id: weekTok.GetId()}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"lifespan"}}})
		checkRefused(t, "unlimited lifespan on itself", err, codes.PermissionDenied, outlive)
		checkRESTRefused(t, "unlimited lifespan on itself",
			ts.do(t, "PATCH", "/v1/tokens/"+weekTok.GetId()+"?update_mask=lifespan", weekSecret, `{}`),
			http.StatusForbidden, codes.PermissionDenied, outlive)
		checkRESTRefused(t, "30-day lifespan on itself",
			ts.do(t, "PATCH", "/v1/tokens/"+weekTok.GetId()+"?update_mask=lifespan", weekSecret, `{"lifespan":"2592000s"}`),
			http.StatusForbidden, codes.PermissionDenied, outlive)
	})
	t.Run("CreateLongerAdmin", func(t *testing.T) {
		for _, lifespan := range []*durationpb.Duration{nil, durationpb.New(30 * 24 * 3600 * 1e9)} {
			_, err := ts.client.CreateToken(withSecret(weekSecret), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
				Name: "Clone", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM,
				Permissions: []string{"tokend.token.find"}, Lifespan: lifespan}})
			checkRefused(t, "admin clone", err, codes.PermissionDenied, outlive)
		}
		checkRESTRefused(t, "unlimited admin clone",
			ts.do(t, "POST", "/v1/tokens", weekSecret, `{"name":"Clone","kind":"TOKEN_KIND_ADMIN","type":"TOKEN_TYPE_CUSTOM","permissions":["tokend.token.find"]}`),
			http.StatusForbidden, codes.PermissionDenied, outlive)
	})
	t.Run("RegenerateRestartsClock", func(t *testing.T) {
		_, err := ts.client.RegenerateToken(withSecret(weekSecret), &tokendv1.RegenerateTokenRequest{Id: older.GetId()})
		checkRefused(t, "regenerate an admin token", err, codes.PermissionDenied, outlive)
		checkRESTRefused(t, "regenerate an admin token",
			ts.do(t, "POST", "/v1/tokens/"+older.GetId()+":regenerate", weekSecret, `{}`),
			http.StatusForbidden, codes.PermissionDenied, outlive)
		// Nothing changed: the old secret still works.
		if _, err := ts.client.ListTokens(withSecret(olderSecret), &tokendv1.ListTokensRequest{}); err != nil {
			t.Errorf("the refused regeneration changed the token: %v", err)
		}
	})
	t.Run("APITokensNotCapped", func(t *testing.T) {
		if _, err := ts.client.CreateToken(withSecret(weekSecret), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "Unlimited API"}}); err != nil {
			t.Errorf("unlimited API token over gRPC: %v", err)
		}
		mustOK(t, ts.do(t, "POST", "/v1/tokens", weekSecret, `{"name":"Unlimited API 2"}`))
		mustOK(t, ts.do(t, "POST", "/v1/tokens/"+api.GetId()+":regenerate", weekSecret, `{}`))
		if _, err := ts.client.RegenerateToken(withSecret(weekSecret), &tokendv1.RegenerateTokenRequest{Id: api.GetId()}); err != nil {
			t.Errorf("regenerate an API token over gRPC: %v", err)
		}
	})
	t.Run("ShorterAdminAllowed", func(t *testing.T) {
		// An admin token that ends before the caller is within the ceiling.
		mustOK(t, ts.do(t, "PATCH", "/v1/tokens/"+older.GetId()+"?update_mask=description", weekSecret, `{"description":"still shorter"}`))
	})
}

func TestLastOwnerKept(t *testing.T) {
	ts := startServer(t, server.Config{})
	var root *tokendv1.Token
	list, err := ts.client.ListTokens(withSecret(ts.root), &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range list.GetTokens() {
		if tok.GetName() == "Root" {
			root = tok
		}
	}
	if root == nil {
		t.Fatal("no Root token")
	}
	const why = "last unlimited full-access admin token"
	mask := func(p string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: []string{p}} }

	_, err = ts.client.DeleteToken(withSecret(ts.root), &tokendv1.DeleteTokenRequest{Id: root.GetId()})
	checkRefused(t, "delete Root", err, codes.FailedPrecondition, why)
	checkRESTRefused(t, "delete Root", ts.do(t, "DELETE", "/v1/tokens/"+root.GetId(), ts.root, ""), http.StatusConflict, codes.FailedPrecondition, why)

	_, err = ts.client.UpdateToken(withSecret(ts.root), &tokendv1.UpdateTokenRequest{
		Token: &tokendv1.Token{Id: root.GetId(), Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}, UpdateMask: mask("type")})
	checkRefused(t, "downgrade Root", err, codes.FailedPrecondition, why)
	checkRESTRefused(t, "downgrade Root", ts.do(t, "PATCH", "/v1/tokens/"+root.GetId()+"?update_mask=type", ts.root, `{"type":"TOKEN_TYPE_READ_ONLY"}`),
		http.StatusConflict, codes.FailedPrecondition, why)

	_, err = ts.client.UpdateToken(withSecret(ts.root), &tokendv1.UpdateTokenRequest{
		Token: &tokendv1.Token{Id: root.GetId(), Lifespan: durationpb.New(week)}, UpdateMask: mask("lifespan")})
	checkRefused(t, "give Root an expiry", err, codes.FailedPrecondition, why)
	checkRESTRefused(t, "give Root an expiry", ts.do(t, "PATCH", "/v1/tokens/"+root.GetId()+"?update_mask=lifespan", ts.root, `{"lifespan":"604800s"}`),
		http.StatusConflict, codes.FailedPrecondition, why)

	// Nothing changed, and the root credential still works.
	got, err := ts.client.GetToken(withSecret(ts.root), &tokendv1.GetTokenRequest{Id: root.GetId()})
	if err != nil || got.GetToken().GetType() != tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS || got.GetToken().GetLifespan() != nil {
		t.Fatalf("Root after the refusals: %v, %v", got.GetToken(), err)
	}
	// A rename keeps it an owner: allowed.
	mustOK(t, ts.do(t, "PATCH", "/v1/tokens/"+root.GetId()+"?update_mask=name", ts.root, `{"name":"Root renamed"}`))

	// With a second owner, the first may go; then the second is the last.
	second, secondSecret := ts.createToken(t, &tokendv1.Token{Name: "Second owner", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	mustOK(t, ts.do(t, "DELETE", "/v1/tokens/"+root.GetId(), secondSecret, ""))
	_, err = ts.client.DeleteToken(withSecret(secondSecret), &tokendv1.DeleteTokenRequest{Id: second.GetId()})
	checkRefused(t, "delete the second owner, now the last", err, codes.FailedPrecondition, why)
}
