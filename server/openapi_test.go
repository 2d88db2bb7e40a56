package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tokend/tokend/server"
)

// TestOpenAPIImportable loads the served /openapi.json and checks what a
// Swagger UI or Postman user needs: a real title, version and description,
// where the bearer credential goes on every operation, and the error shape.
func TestOpenAPIImportable(t *testing.T) {
	ts := startServer(t, server.Config{})
	r := ts.do(t, "GET", "/openapi.json", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	var doc struct {
		Swagger string
		Info    struct{ Title, Version, Description string }
		// SecurityDefinitions name → scheme; Security applies to every
		// operation that does not override it.
		SecurityDefinitions map[string]struct{ Type, Name, In, Description string }
		Security            []map[string][]string
		Paths               map[string]map[string]struct {
			OperationID string
			Security    *[]map[string][]string
			Responses   map[string]struct {
				Description string
				Schema      struct {
					Ref string `json:"$ref"`
				}
			}
		}
		Definitions map[string]struct {
			Description string
			Properties  map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger %q", doc.Swagger)
	}
	if doc.Info.Title != "tokend API" {
		t.Errorf("title %q, want a name people recognise, not a proto file", doc.Info.Title)
	}
	if doc.Info.Version != "v1" {
		t.Errorf("version %q", doc.Info.Version)
	}
	if !strings.Contains(doc.Info.Description, "Authorization: Bearer") {
		t.Errorf("description does not say where the credential goes: %q", doc.Info.Description)
	}

	var bearer string
	for name, s := range doc.SecurityDefinitions {
		if s.Type == "apiKey" && s.In == "header" && s.Name == "Authorization" && strings.Contains(s.Description, "Bearer") {
			bearer = name
		}
	}
	if bearer == "" {
		t.Fatalf("no securityDefinitions entry for an Authorization: Bearer header: %+v", doc.SecurityDefinitions)
	}
	global := requires(doc.Security, bearer)

	const errorRef = "#/definitions/rpcStatus"
	status, ok := doc.Definitions["rpcStatus"]
	if !ok {
		t.Fatal("no rpcStatus definition")
	}
	for _, p := range []string{"code", "message", "details"} {
		if _, ok := status.Properties[p]; !ok {
			t.Errorf("the error shape lacks %q", p)
		}
	}
	if !strings.Contains(status.Description, "BadRequest") {
		t.Errorf("the error shape is not described: %q", status.Description)
	}

	operations := 0
	for path, methods := range doc.Paths {
		for method, op := range methods {
			operations++
			name := strings.ToUpper(method) + " " + path
			// Every operation of the REST API needs an admin credential.
			if op.Security != nil && !requires(*op.Security, bearer) || op.Security == nil && !global {
				t.Errorf("%s does not require %s", name, bearer)
			}
			for _, code := range []string{"400", "401", "403", "500", "default"} {
				resp, ok := op.Responses[code]
				if !ok || resp.Schema.Ref != errorRef || resp.Description == "" {
					t.Errorf("%s: response %s = %+v, want a described %s", name, code, resp, errorRef)
				}
			}
		}
	}
	if operations < 10 {
		t.Errorf("only %d operations", operations)
	}
	for _, op := range []struct{ path, method, code string }{
		{"/v1/tokens", "post", "409"},
		{"/v1/tokens/{id}", "get", "404"},
		{"/v1/tokens/{id}", "delete", "404"},
		{"/v1/tokens/{id}:regenerate", "post", "404"},
		{"/v1/tokens/{token.id}", "patch", "404"},
		{"/v1/tokens/{token.id}", "patch", "409"},
	} {
		if resp := doc.Paths[op.path][op.method].Responses[op.code]; resp.Schema.Ref != errorRef {
			t.Errorf("%s %s has no %s response", op.method, op.path, op.code)
		}
	}
}

// requires reports whether a security requirement list asks for scheme.
func requires(reqs []map[string][]string, scheme string) bool {
	for _, r := range reqs {
		if _, ok := r[scheme]; ok && len(r) == 1 {
			return true
		}
	}
	return false
}
