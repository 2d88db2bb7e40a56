package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// TestRESTIntrospectMatchesGRPC: POST /v1/tokens:introspect has a handler of
// its own (the REST hot path); for every kind of answer and error it must
// say exactly what gRPC, and so the gateway, says.
func TestRESTIntrospectMatchesGRPC(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1})
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find"}, {Id: "api::article.article.create"},
	}}); err != nil {
		t.Fatal(err)
	}
	custom, customSecret := ts.createToken(t, &tokendv1.Token{Name: "custom", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM,
		Permissions: []string{"api::article.article.find"}, Lifespan: durationpb.New(7 * 24 * 3600e9)})
	_, readOnly := ts.createToken(t, &tokendv1.Token{Name: "reader", Description: "quotes \" and\nnewlines"})
	_, admin := ts.createToken(t, &tokendv1.Token{Name: "admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	rotated, err := ts.client.RegenerateToken(withSecret(ts.root), &tokendv1.RegenerateTokenRequest{Id: custom.GetId(), GracePeriod: durationpb.New(3600e9)})
	if err != nil {
		t.Fatal(err)
	}
	deleted, deletedSecret := ts.createToken(t, &tokendv1.Token{Name: "deleted"})
	if _, err := ts.client.DeleteToken(withSecret(ts.root), &tokendv1.DeleteTokenRequest{Id: deleted.GetId()}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		credential string
		req        *tokendv1.IntrospectTokenRequest
	}{
		{"CustomAllowed", ts.root, &tokendv1.IntrospectTokenRequest{Token: rotated.GetSecret(), Actions: []string{"api::article.article.find"}}},
		{"CustomDenied", ts.root, &tokendv1.IntrospectTokenRequest{Token: rotated.GetSecret(), Actions: []string{"api::article.article.find", "api::article.article.create", "x.delete"}}},
		{"PreviousSecretInGrace", ts.root, &tokendv1.IntrospectTokenRequest{Token: customSecret}},
		{"ReadOnlyNoActions", ts.root, &tokendv1.IntrospectTokenRequest{Token: readOnly}},
		{"AdminTokenPresented", ts.root, &tokendv1.IntrospectTokenRequest{Token: admin}},
		{"Deleted", ts.root, &tokendv1.IntrospectTokenRequest{Token: deletedSecret}},
		{"Malformed", ts.root, &tokendv1.IntrospectTokenRequest{Token: "not a token"}},
		{"Empty", ts.root, &tokendv1.IntrospectTokenRequest{}},
		{"BadAction", ts.root, &tokendv1.IntrospectTokenRequest{Token: readOnly, Actions: []string{"no dots"}}},
		{"NoCredential", "", &tokendv1.IntrospectTokenRequest{Token: readOnly}},
		{"APITokenAsCredential", readOnly, &tokendv1.IntrospectTokenRequest{Token: readOnly}},
		{"CredentialLacksAction", admin, &tokendv1.IntrospectTokenRequest{Token: readOnly}},
	}
	ignoreLastUse := protocmp.IgnoreFields(&tokendv1.Token{}, "last_used_time")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := withSecret(tt.credential)
			if tt.credential == "" {
				ctx = t.Context()
			}
			want, grpcErr := ts.client.IntrospectToken(ctx, tt.req)
			body, err := protojson.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			got := ts.do(t, "POST", "/v1/tokens:introspect", tt.credential, string(body))
			if grpcErr != nil {
				st := status.Convert(grpcErr)
				var e struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal(got.body, &e); err != nil {
					t.Fatalf("error body is not JSON: %s", got.body)
				}
				if e.Code != int(st.Code()) || e.Message != st.Message() {
					t.Errorf("REST error %d %q, gRPC %v %q", e.Code, e.Message, st.Code(), st.Message())
				}
				if got.status == http.StatusOK {
					t.Errorf("REST status 200 for gRPC error %v", st.Code())
				}
				return
			}
			if got.status != http.StatusOK {
				t.Fatalf("REST status %d, gRPC OK: %s", got.status, got.body)
			}
			var rest tokendv1.IntrospectTokenResponse
			if err := protojson.Unmarshal(got.body, &rest); err != nil {
				t.Fatalf("REST body does not decode as IntrospectTokenResponse: %v\n%s", err, got.body)
			}
			if diff := cmp.Diff(want, &rest, protocmp.Transform(), ignoreLastUse); diff != "" {
				t.Errorf("REST and gRPC answers differ (-gRPC +REST):\n%s", diff)
			}
			// Every field is present, as the gateway's marshaler writes them.
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(got.body, &fields); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"active", "inactiveReason", "token", "allowed", "deniedActions", "previousSecret"} {
				if _, ok := fields[f]; !ok {
					t.Errorf("REST answer lacks %q: %s", f, got.body)
				}
			}
		})
	}
	t.Run("TrailingData", func(t *testing.T) {
		checkError(t, ts.do(t, "POST", "/v1/tokens:introspect", ts.root, `{"token":"x"} {"token":"y"}`), http.StatusBadRequest, 3)
	})
	t.Run("UnknownField", func(t *testing.T) {
		checkError(t, ts.do(t, "POST", "/v1/tokens:introspect", ts.root, `{"token":"x","tokne":"y"}`), http.StatusBadRequest, 3)
	})
	t.Run("WrongMethod", func(t *testing.T) {
		if r := ts.do(t, "GET", "/v1/tokens:introspect", ts.root, ""); r.status != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d, want 405", r.status)
		}
	})
}
