package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// TestLookAlikeNames: a name may not hide invisible characters, and names
// that differ only in case, width or compatibility form are the same name,
// on both transports, at creation and on edit.
func TestLookAlikeNames(t *testing.T) {
	ts := startServer(t, server.Config{})
	victim, _ := ts.createToken(t, &tokendv1.Token{Name: "Straße deploy"})
	restBody := func(name string) string {
		b, _ := json.Marshal(map[string]string{"name": name})
		return string(b)
	}

	invisible := map[string]string{
		"ZeroWidthSpace":      "Root\u200b",
		"ZeroWidthJoiner":     "Ro\u200dot",
		"RightToLeftOverride": "\u202eRoot",
		"RightToLeftIsolate":  "Root\u2067x\u2069",
		"ByteOrderMark":       "\ufeffRoot",
		"LineSeparator":       "Root\u2028x",
		"ParagraphSeparator":  "Root\u2029x",
		"ArabicLetterMark":    "Root\u061c",
	}
	for name, value := range invisible {
		t.Run(name, func(t *testing.T) {
			_, err := ts.client.CreateToken(withSecret(ts.root), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: value}})
			checkNameViolation(t, "create over gRPC", err)
			_, err = ts.client.UpdateToken(withSecret(ts.root), &tokendv1.UpdateTokenRequest{
				Token: &tokendv1.Token{Id: victim.GetId(), Name: value}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
			checkNameViolation(t, "rename over gRPC", err)
			body := checkError(t, ts.do(t, "POST", "/v1/tokens", ts.root, restBody(value)), http.StatusBadRequest, codes.InvalidArgument)
			if f := fieldViolations(t, body); !slices.Contains(f, "token.name") {
				t.Errorf("create over REST: violations %q, want token.name", f)
			}
			body = checkError(t, ts.do(t, "PATCH", "/v1/tokens/"+victim.GetId()+"?update_mask=name", ts.root, restBody(value)), http.StatusBadRequest, codes.InvalidArgument)
			if f := fieldViolations(t, body); !slices.Contains(f, "token.name") {
				t.Errorf("rename over REST: violations %q, want token.name", f)
			}
		})
	}

	collide := map[string]string{
		"Case":           "ROOT",
		"FullWidth":      "ＲＯＯＴ",
		"CaseFoldSharpS": "STRASSE DEPLOY",
		"Ligature":       "Straße deploy", // itself
	}
	for name, value := range collide {
		t.Run("Collides"+name, func(t *testing.T) {
			_, err := ts.client.CreateToken(withSecret(ts.root), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: value}})
			if status.Code(err) != codes.AlreadyExists {
				t.Errorf("create %q over gRPC: %v, want AlreadyExists", value, err)
			}
			checkError(t, ts.do(t, "POST", "/v1/tokens", ts.root, restBody(value)), http.StatusConflict, codes.AlreadyExists)
		})
	}
	// The ligature "ﬁ" folds to "fi" under NFKC: one name.
	ts.createToken(t, &tokendv1.Token{Name: "ﬁle reader"})
	checkError(t, ts.do(t, "POST", "/v1/tokens", ts.root, restBody("FILE READER")), http.StatusConflict, codes.AlreadyExists)
	// Visible characters outside ASCII stay allowed.
	mustOK(t, ts.do(t, "POST", "/v1/tokens", ts.root, restBody("Überwachung — 監視")))
}

func checkNameViolation(t *testing.T, what string, err error) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Errorf("%s: %v, want InvalidArgument", what, err)
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == "token.name" {
					return
				}
			}
		}
	}
	t.Errorf("%s: %v names no token.name violation", what, err)
}
