package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

const week = 7 * 24 * time.Hour

// TestRESTRejectsBadJSON: a body that does not decode is refused with 400,
// changes nothing, and the error names the field (in the message and in a
// google.rpc.BadRequest field violation) and the problem, but never repeats
// what the client sent: a secret pasted into the wrong place must not come
// back in an answer, or in whatever logs answers on the way.
func TestRESTRejectsBadJSON(t *testing.T) {
	ts := startServer(t, server.Config{})
	secret := ts.root
	tests := []struct {
		name, method, path, body string
		field                    string // the field violation; "" for none
		mention                  string // the message names this
		never                    string // the message never holds this
	}{
		{"UnknownField", "POST", "/v1/tokens", `{"name":"a","nmae":"b"}`, "token.nmae", "nmae", `"b"`},
		{"UnknownFieldInIntrospect", "POST", "/v1/tokens:introspect", `{"token":"x","action":["a.find"]}`, "action", "action", "a.find"},
		{"UnknownFieldInPatch", "PATCH", "/v1/tokens/abc", `{"descripton":"x"}`, "token.descripton", "descripton", `"x"`},
		{"UnknownFieldInRegister", "POST", "/v1/actions:register", `{"actions":[{"id":"a.b.find","desc":"x"}]}`, "actions[0].desc", "desc", `"x"`},
		{"SecretAsFieldName", "POST", "/v1/tokens", `{"name":"a","` + secret + `":1}`, "token", "unknown field", secret},
		{"WrongEnumName", "POST", "/v1/tokens", `{"name":"a","type":"TOKEN_TYPE_BOGUS"}`, "token.type", "token.type", "BOGUS"},
		{"WrongKindName", "POST", "/v1/tokens", `{"name":"a","kind":"ADMIN"}`, "token.kind", "token.kind", `"ADMIN"`},
		{"SecretAsEnum", "POST", "/v1/tokens", `{"name":"a","type":"` + secret + `"}`, "token.type", "token.type", secret},
		{"WrongEnumInQuery", "GET", "/v1/tokens?type=TOKEN_TYPE_BOGUS", "", "", "type", ""},
		{"NotJSON", "POST", "/v1/tokens", `name=a`, "", "malformed JSON", "name=a"},
		{"SecretUnquoted", "POST", "/v1/tokens:introspect", `{"token": ` + secret + `}`, "", "malformed JSON", secret},
		{"SecretAfterTheObject", "POST", "/v1/tokens:introspect", `{"token":"x"} ` + secret, "", "malformed JSON", secret},
		{"WrongJSONType", "POST", "/v1/tokens", `{"name":7}`, "token.name", "token.name", ""},
		{"SecretAsNumber", "POST", "/v1/tokens", `{"name":"a","lifespan":"` + secret + `"}`, "token.lifespan", "token.lifespan", secret},
		{"BadDuration", "POST", "/v1/tokens", `{"name":"a","lifespan":"7d"}`, "token.lifespan", "token.lifespan", `"7d"`},
		{"BadTimeInPatch", "PATCH", "/v1/tokens/abc", `{"expireTime":"soon"}`, "token.expire_time", "token.expire_time", "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := countTokens(t, ts)
			r := ts.do(t, tt.method, tt.path, ts.root, tt.body)
			body := checkError(t, r, http.StatusBadRequest, codes.InvalidArgument)
			msg := str(body, "message")
			if !strings.Contains(msg, tt.mention) {
				t.Errorf("message %q does not name %q", msg, tt.mention)
			}
			if tt.never != "" && strings.Contains(string(r.body), tt.never) {
				t.Errorf("the answer repeats %q: %s", tt.never, r.body)
			}
			if strings.Contains(string(r.body), secret) {
				t.Errorf("the answer holds the secret: %s", r.body)
			}
			if got := fieldViolations(t, body); tt.field != "" && !slices.Equal(got, []string{tt.field}) {
				t.Errorf("field violations %q, want [%q]", got, tt.field)
			}
			if after := countTokens(t, ts); after != before {
				t.Errorf("a bad request changed the store: %d tokens before, %d after", before, after)
			}
		})
	}
	if logs := ts.logs.String(); strings.Contains(logs, secret[8:]) {
		t.Errorf("the log holds the secret:\n%s", logs)
	}
}

func countTokens(t *testing.T, ts *testServer) int {
	t.Helper()
	resp, err := ts.client.ListTokens(withSecret(ts.root), &tokendv1.ListTokensRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	return len(resp.GetTokens())
}

func TestRESTRouting(t *testing.T) {
	ts := startServer(t, server.Config{})
	tests := []struct {
		name, method, path string
		status             int
		code               codes.Code
	}{
		{"PutTokens", "PUT", "/v1/tokens", http.StatusMethodNotAllowed, codes.Unimplemented},
		{"GetIntrospect", "GET", "/v1/tokens:introspect", http.StatusMethodNotAllowed, codes.Unimplemented},
		{"DeleteActions", "DELETE", "/v1/actions", http.StatusMethodNotAllowed, codes.Unimplemented},
		{"PostTokenID", "POST", "/v1/tokens/abc", http.StatusMethodNotAllowed, codes.Unimplemented},
		// The gateway reads a verb it has no GET rule for as part of the id:
		// GetToken of "abc:regenerate", which does not exist.
		{"GetRegenerate", "GET", "/v1/tokens/abc:regenerate", http.StatusNotFound, codes.NotFound},
		{"UnknownAPIPath", "GET", "/v1/nothing", http.StatusNotFound, codes.NotFound},
		{"UnknownVerb", "POST", "/v1/tokens:explode", http.StatusNotFound, codes.NotFound},
		// The operational endpoints are existing paths too.
		{"PostHealthz", "POST", "/healthz", http.StatusMethodNotAllowed, 0},
		{"DeleteMetrics", "DELETE", "/metrics", http.StatusMethodNotAllowed, 0},
		{"PutOpenAPI", "PUT", "/openapi.json", http.StatusMethodNotAllowed, 0},
		{"UnknownVersion", "GET", "/v2/tokens", http.StatusNotFound, 0},
		{"UnknownTopLevel", "GET", "/nothing", http.StatusNotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, tt.path, ts.root, "")
			if tt.code == 0 {
				// Outside the API only the status is part of the contract.
				if r.status != tt.status {
					t.Errorf("status %d, want %d; body %s", r.status, tt.status, r.body)
				}
				return
			}
			checkError(t, r, tt.status, tt.code)
		})
	}
}

func TestRESTBodyLimit(t *testing.T) {
	const limit = 4096
	ts := startServer(t, server.Config{MaxBodyBytes: limit})
	big := `{"token":"` + strings.Repeat("x", 2*limit) + `","actions":[]}`

	t.Run("ContentLength", func(t *testing.T) {
		r := ts.do(t, "POST", "/v1/tokens:introspect", ts.root, big)
		checkError(t, r, http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
	})
	t.Run("Chunked", func(t *testing.T) {
		req, err := http.NewRequest("POST", ts.base+"/v1/tokens:introspect", io.MultiReader(strings.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // unknown: the client sends it chunked
		req.Header.Set("Authorization", "Bearer "+ts.root)
		req.Header.Set("Content-Type", "application/json")
		r := send(t, req)
		t.Logf("chunked over-limit body: %d %s", r.status, r.body)
		if r.status < 400 || r.status > 499 {
			t.Fatalf("status %d, want 4xx; body: %s", r.status, r.body)
		}
		var e map[string]any
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Errorf("error body is not JSON: %s", r.body)
		}
	})
	t.Run("AtTheLimit", func(t *testing.T) {
		body := `{"token":"x","actions":[]}`
		body += strings.Repeat(" ", limit-len(body))
		r := ts.do(t, "POST", "/v1/tokens:introspect", ts.root, body)
		got := mustOK(t, r)
		if got["inactiveReason"] != "INACTIVE_REASON_MALFORMED" {
			t.Errorf("inactiveReason = %v, want INACTIVE_REASON_MALFORMED", got["inactiveReason"])
		}
	})
	t.Run("DefaultIsOneMiB", func(t *testing.T) {
		ts := startServer(t, server.Config{})
		body := `{"token":"` + strings.Repeat("x", server.DefaultMaxBodyBytes) + `"}`
		r := ts.do(t, "POST", "/v1/tokens:introspect", ts.root, body)
		checkError(t, r, http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
	})
}

// TestRESTErrorMapping walks the error model over REST: each gRPC code the
// service answers maps to its HTTP status, with the JSON error shape.
func TestRESTErrorMapping(t *testing.T) {
	ts := startServer(t, server.Config{})
	_, readOnly := ts.createToken(t, &tokendv1.Token{Name: "ro admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY})
	_, apiSecret := ts.createToken(t, &tokendv1.Token{Name: "some api"})
	ts.createToken(t, &tokendv1.Token{Name: "Taken Name"})
	gone, goneSecret := ts.createToken(t, &tokendv1.Token{Name: "gone", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if _, err := ts.client.DeleteToken(withSecret(ts.root), &tokendv1.DeleteTokenRequest{Id: gone.GetId()}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, method, path, secret, body string
		status                           int
		code                             codes.Code
		fields                           []string // BadRequest field violations, in order
	}{
		{"EmptyName", "POST", "/v1/tokens", ts.root, `{"name":"  "}`, 400, codes.InvalidArgument, []string{"token.name"}},
		{"LongName", "POST", "/v1/tokens", ts.root, `{"name":"` + strings.Repeat("n", 101) + `"}`, 400, codes.InvalidArgument, []string{"token.name"}},
		{"BadLifespan", "POST", "/v1/tokens", ts.root, `{"name":"x","lifespan":"3600s"}`, 400, codes.InvalidArgument, []string{"token.lifespan"}},
		{"PermissionsOnReadOnly", "POST", "/v1/tokens", ts.root, `{"name":"x","permissions":["a.b.find"]}`, 400, codes.InvalidArgument, []string{"token.permissions"}},
		{"UnknownPermission", "POST", "/v1/tokens", ts.root, `{"name":"x","type":"TOKEN_TYPE_CUSTOM","permissions":["api::nope.nope.find"]}`, 400, codes.InvalidArgument, []string{"token.permissions"}},
		{"SeveralFields", "POST", "/v1/tokens", ts.root, `{"name":"","lifespan":"1s"}`, 400, codes.InvalidArgument, []string{"token.name", "token.lifespan"}},
		{"PageSize", "GET", "/v1/tokens?page_size=1001", ts.root, "", 400, codes.InvalidArgument, []string{"page_size"}},
		{"OrderBy", "GET", "/v1/tokens?order_by=secret", ts.root, "", 400, codes.InvalidArgument, []string{"order_by"}},
		{"PageToken", "GET", "/v1/tokens?page_token=garbage", ts.root, "", 400, codes.InvalidArgument, []string{"page_token"}},
		{"UpdateMask", "PATCH", "/v1/tokens/abc?update_mask=kind", ts.root, `{"kind":"TOKEN_KIND_ADMIN"}`, 400, codes.InvalidArgument, []string{"update_mask"}},
		{"ReservedAction", "POST", "/v1/actions:register", ts.root, `{"actions":[{"id":"tokend.x.find"}]}`, 400, codes.InvalidArgument, []string{"actions[0].id"}},
		{"BadIntrospectAction", "POST", "/v1/tokens:introspect", ts.root, `{"token":"x","actions":["no dots"]}`, 400, codes.InvalidArgument, []string{"actions[0]"}},
		{"DuplicateName", "POST", "/v1/tokens", ts.root, `{"name":" taken name "}`, 409, codes.AlreadyExists, []string{"token.name"}},
		{"GetUnknownID", "GET", "/v1/tokens/doesnotexist", ts.root, "", 404, codes.NotFound, nil},
		{"PatchUnknownID", "PATCH", "/v1/tokens/doesnotexist", ts.root, `{"name":"y"}`, 404, codes.NotFound, nil},
		{"DeleteUnknownID", "DELETE", "/v1/tokens/doesnotexist", ts.root, "", 404, codes.NotFound, nil},
		{"RegenerateUnknownID", "POST", "/v1/tokens/doesnotexist:regenerate", ts.root, `{}`, 404, codes.NotFound, nil},
		{"NoCredential", "GET", "/v1/tokens", "", "", 401, codes.Unauthenticated, nil},
		{"APITokenAsCredential", "GET", "/v1/tokens", apiSecret, "", 401, codes.Unauthenticated, nil},
		{"DeletedAdminToken", "GET", "/v1/tokens", goneSecret, "", 401, codes.Unauthenticated, nil},
		{"ReadOnlyCreates", "POST", "/v1/tokens", readOnly, `{"name":"z"}`, 403, codes.PermissionDenied, nil},
		{"CeilingExceeded", "POST", "/v1/tokens", readOnly, `{"name":"z","kind":"TOKEN_KIND_ADMIN","type":"TOKEN_TYPE_FULL_ACCESS"}`, 403, codes.PermissionDenied, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := countTokens(t, ts)
			r := ts.do(t, tt.method, tt.path, tt.secret, tt.body)
			body := checkError(t, r, tt.status, tt.code)
			if got := fieldViolations(t, body); tt.fields != nil && !slices.Equal(got, tt.fields) {
				t.Errorf("field violations %q, want %q; body %s", got, tt.fields, r.body)
			}
			if after := countTokens(t, ts); after != before {
				t.Errorf("a failed request changed the store: %d tokens before, %d after", before, after)
			}
			if tt.secret != "" && strings.Contains(string(r.body), tt.secret) {
				t.Errorf("the error body repeats the credential")
			}
		})
	}
}

var rfc3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

func TestRESTProtoJSON(t *testing.T) {
	ts := startServer(t, server.Config{})
	r := ts.do(t, "POST", "/v1/tokens", ts.root, `{"name":" Reports ","description":"nightly","type":"TOKEN_TYPE_FULL_ACCESS","lifespan":"604800s"}`)
	got := mustOK(t, r)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	secret := str(got, "secret")
	if !strings.HasPrefix(secret, "tkd_") {
		t.Errorf("secret %q: want the tkd_ prefix", secret)
	}
	tok, _ := got["token"].(map[string]any)
	for _, k := range []string{"id", "name", "description", "kind", "type", "permissions", "lifespan", "expireTime", "createTime", "updateTime", "secretHint"} {
		if _, ok := tok[k]; !ok {
			t.Errorf("token lacks the lowerCamel key %q: %s", k, r.body)
		}
	}
	for k := range tok {
		if strings.Contains(k, "_") {
			t.Errorf("token has a snake_case key %q", k)
		}
		if k == "secret" || k == "secretHash" {
			t.Errorf("token carries %q", k)
		}
	}
	checks := map[string]string{"name": "Reports", "kind": "TOKEN_KIND_API", "type": "TOKEN_TYPE_FULL_ACCESS", "lifespan": "604800s"}
	for k, want := range checks {
		if tok[k] != want {
			t.Errorf("token.%s = %v, want %q", k, tok[k], want)
		}
	}
	var created, expires time.Time
	for k, dst := range map[string]*time.Time{"createTime": &created, "updateTime": new(time.Time), "expireTime": &expires} {
		s := str(tok, k)
		if !rfc3339.MatchString(s) {
			t.Errorf("token.%s = %q: want RFC 3339 in UTC", k, s)
			continue
		}
		*dst, _ = time.Parse(time.RFC3339Nano, s)
	}
	if d := expires.Sub(created); d != week {
		t.Errorf("expireTime - createTime = %v, want %v", d, week)
	}
	if v, ok := tok["lastUsedTime"]; ok && v != nil {
		t.Errorf("lastUsedTime = %v for a token never used", v)
	}
	hint := str(tok, "secretHint")
	if !strings.HasPrefix(hint, "tkd_") || !strings.HasSuffix(hint, secret[len(secret)-4:]) || len(hint) >= len(secret)/2 {
		t.Errorf("secretHint %q: want the prefix and the last 4 characters only", hint)
	}

	// The secret is never shown again.
	id := str(tok, "id")
	for _, path := range []string{"/v1/tokens/" + id, "/v1/tokens"} {
		r := ts.do(t, "GET", path, ts.root, "")
		mustOK(t, r)
		if strings.Contains(string(r.body), secret) {
			t.Errorf("GET %s shows the secret", path)
		}
	}

	// Actions carry subject and verb.
	mustOK(t, ts.do(t, "POST", "/v1/actions:register", ts.root, `{"actions":[{"id":"api::article.article.findOne","description":"read one"}]}`))
	acts := mustOK(t, ts.do(t, "GET", "/v1/actions", ts.root, ""))
	list, _ := acts["actions"].([]any)
	if len(list) != 1 || str(list[0], "subject") != "api::article.article" || str(list[0], "verb") != "findOne" {
		t.Errorf("ListActions = %v", acts)
	}
	admin := mustOK(t, ts.do(t, "GET", "/v1/actions?kind=TOKEN_KIND_ADMIN", ts.root, ""))
	var adminIDs []string
	list, _ = admin["actions"].([]any)
	for _, a := range list {
		adminIDs = append(adminIDs, str(a, "id"))
	}
	for _, want := range adminActions {
		if !slices.Contains(adminIDs, want) {
			t.Errorf("admin catalog %q lacks %s", adminIDs, want)
		}
	}
}

func TestRESTPatchChangesOnlyTheBodyFields(t *testing.T) {
	ts := startServer(t, server.Config{})
	mustOK(t, ts.do(t, "POST", "/v1/actions:register", ts.root, `{"actions":[{"id":"api::a.a.find"},{"id":"api::a.a.create"}]}`))
	created := mustOK(t, ts.do(t, "POST", "/v1/tokens", ts.root,
		`{"name":"orig","description":"first","type":"TOKEN_TYPE_CUSTOM","permissions":["api::a.a.find"],"lifespan":"2592000s"}`))
	orig, _ := created["token"].(map[string]any)
	id := str(orig, "id")

	steps := []struct {
		name, body string
		changed    map[string]any // the fields that must change, and to what
	}{
		{"Description", `{"description":"second"}`, map[string]any{"description": "second"}},
		{"Name", `{"name":"renamed"}`, map[string]any{"name": "renamed"}},
		{"Permissions", `{"permissions":["api::a.a.create","api::a.a.find"]}`, map[string]any{"permissions": []any{"api::a.a.create", "api::a.a.find"}}},
		{"NameAndDescription", `{"name":"again","description":""}`, map[string]any{"name": "again", "description": ""}},
	}
	prev := orig
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := mustOK(t, ts.do(t, "PATCH", "/v1/tokens/"+id, ts.root, st.body))
			tok, _ := got["token"].(map[string]any)
			for k, v := range prev {
				want, changed := st.changed[k]
				switch {
				case k == "updateTime":
					continue
				case !changed:
					want = v
				}
				if !jsonEqual(tok[k], want) {
					t.Errorf("%s = %v, want %v", k, tok[k], want)
				}
			}
			prev = tok
		})
	}

	t.Run("LifespanRestartsTheClock", func(t *testing.T) {
		got := mustOK(t, ts.do(t, "PATCH", "/v1/tokens/"+id, ts.root, `{"lifespan":"604800s"}`))
		tok, _ := got["token"].(map[string]any)
		upd, _ := time.Parse(time.RFC3339Nano, str(tok, "updateTime"))
		exp, _ := time.Parse(time.RFC3339Nano, str(tok, "expireTime"))
		if exp.Sub(upd) != week || tok["lifespan"] != "604800s" {
			t.Errorf("after a lifespan edit: lifespan %v, expireTime - updateTime = %v, want 7 days", tok["lifespan"], exp.Sub(upd))
		}
		if tok["name"] != "again" || tok["type"] != "TOKEN_TYPE_CUSTOM" {
			t.Errorf("a lifespan edit changed other fields: %v", tok)
		}
	})
	t.Run("ExplicitMaskWins", func(t *testing.T) {
		got := mustOK(t, ts.do(t, "PATCH", "/v1/tokens/"+id+"?update_mask=description", ts.root, `{"name":"ignored","description":"masked"}`))
		if str(got, "token", "name") != "again" || str(got, "token", "description") != "masked" {
			t.Errorf("with update_mask=description: %v", got["token"])
		}
	})
	t.Run("EmptyBody", func(t *testing.T) {
		r := ts.do(t, "PATCH", "/v1/tokens/"+id, ts.root, `{}`)
		body := checkError(t, r, http.StatusBadRequest, codes.InvalidArgument)
		if f := fieldViolations(t, body); !slices.Equal(f, []string{"update_mask"}) {
			t.Errorf("field violations %q, want update_mask", f)
		}
	})
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestRESTRegenerateAndIntrospect(t *testing.T) {
	ts := startServer(t, server.Config{})
	mustOK(t, ts.do(t, "POST", "/v1/actions:register", ts.root, `{"actions":[{"id":"api::a.a.find"},{"id":"api::a.a.delete"}]}`))
	created := mustOK(t, ts.do(t, "POST", "/v1/tokens", ts.root, `{"name":"svc","lifespan":"604800s"}`))
	id, oldSecret := str(created, "token", "id"), str(created, "secret")

	introspect := func(t *testing.T, secret string, actions ...string) map[string]any {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"token": secret, "actions": actions})
		return mustOK(t, ts.do(t, "POST", "/v1/tokens:introspect", ts.root, string(body)))
	}

	got := introspect(t, oldSecret, "api::a.a.find", "api::a.a.delete")
	if got["active"] != true || got["allowed"] != false || !jsonEqual(got["deniedActions"], []string{"api::a.a.delete"}) {
		t.Errorf("introspect read-only token for find+delete = %v", got)
	}
	if str(got, "token", "id") != id || str(got, "token", "lastUsedTime") == "" {
		t.Errorf("introspect: token %v, want id %s and a lastUsedTime", got["token"], id)
	}
	if strings.Contains(fmt.Sprint(got), oldSecret) {
		t.Errorf("introspect repeats the secret")
	}
	if got := introspect(t, oldSecret, "api::a.a.find"); got["allowed"] != true {
		t.Errorf("introspect find = %v, want allowed", got)
	}

	for _, body := range []string{`{}`, ``} {
		t.Run(fmt.Sprintf("Body%q", body), func(t *testing.T) {
			regen := mustOK(t, ts.do(t, "POST", "/v1/tokens/"+id+":regenerate", ts.root, body))
			newSecret := str(regen, "secret")
			if newSecret == "" || newSecret == oldSecret || str(regen, "token", "id") != id {
				t.Fatalf("regenerate = %v", regen)
			}
			if !strings.HasSuffix(newSecret, str(regen, "token", "secretHint")[len(str(regen, "token", "secretHint"))-4:]) {
				t.Errorf("secretHint %q does not end like the new secret", str(regen, "token", "secretHint"))
			}
			upd, _ := time.Parse(time.RFC3339Nano, str(regen, "token", "updateTime"))
			exp, _ := time.Parse(time.RFC3339Nano, str(regen, "token", "expireTime"))
			if exp.Sub(upd) != week {
				t.Errorf("regenerate: expireTime - updateTime = %v, want the lifespan restarted (7 days)", exp.Sub(upd))
			}
			if got := introspect(t, oldSecret); got["active"] != false || got["inactiveReason"] != "INACTIVE_REASON_NOT_FOUND" || got["token"] != nil {
				t.Errorf("old secret after regenerate: %v", got)
			}
			if got := introspect(t, newSecret); got["active"] != true {
				t.Errorf("new secret after regenerate: %v", got)
			}
			oldSecret = newSecret
		})
	}

	t.Run("Inactive", func(t *testing.T) {
		for _, tt := range []struct{ secret, reason string }{
			{"", "INACTIVE_REASON_MALFORMED"},
			{"tkd_nope", "INACTIVE_REASON_MALFORMED"},
			{ts.root, "INACTIVE_REASON_NOT_FOUND"}, // an admin token is not an API token
		} {
			got := introspect(t, tt.secret)
			if got["active"] != false || got["inactiveReason"] != tt.reason || got["token"] != nil || got["allowed"] != false {
				t.Errorf("introspect %.8s… = %v, want inactive %s", tt.secret, got, tt.reason)
			}
		}
	})
	t.Run("Deleted", func(t *testing.T) {
		mustOK(t, ts.do(t, "DELETE", "/v1/tokens/"+id, ts.root, ""))
		if got := introspect(t, oldSecret); got["active"] != false || got["inactiveReason"] != "INACTIVE_REASON_NOT_FOUND" {
			t.Errorf("introspect after delete = %v", got)
		}
		checkError(t, ts.do(t, "GET", "/v1/tokens/"+id, ts.root, ""), http.StatusNotFound, codes.NotFound)
	})
}

func TestRESTListFiltersAndPages(t *testing.T) {
	ts := startServer(t, server.Config{})
	// Five read-only API tokens expiring in 7 days: what the query selects.
	var want []string
	for i := range 5 {
		tok, _ := ts.createToken(t, &tokendv1.Token{Name: fmt.Sprintf("ro-%d", i), Lifespan: durationpb.New(week)})
		want = append(want, tok.GetId())
	}
	// Decoys, each failing one filter.
	ts.createToken(t, &tokendv1.Token{Name: "ro-30d", Lifespan: durationpb.New(30 * 24 * time.Hour)})
	ts.createToken(t, &tokendv1.Token{Name: "ro-unlimited"})
	ts.createToken(t, &tokendv1.Token{Name: "full-7d", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Lifespan: durationpb.New(week)})
	ts.createToken(t, &tokendv1.Token{Name: "admin-ro-7d", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Lifespan: durationpb.New(week)})

	before := time.Now().Add(8 * 24 * time.Hour).UTC().Format(time.RFC3339)
	q := url.Values{
		"order_by":      {"create_time desc"},
		"page_size":     {"2"},
		"kind":          {"TOKEN_KIND_API"},
		"type":          {"TOKEN_TYPE_READ_ONLY"},
		"expire_before": {before},
	}
	var got []string
	var created []time.Time
	pages := 0
	for {
		// As a user types it: order_by=create_time%20desc.
		page := mustOK(t, ts.do(t, "GET", "/v1/tokens?"+strings.ReplaceAll(q.Encode(), "+", "%20"), ts.root, ""))
		pages++
		list, _ := page["tokens"].([]any)
		if len(list) > 2 {
			t.Fatalf("page of %d tokens with page_size=2", len(list))
		}
		for _, tok := range list {
			got = append(got, str(tok, "id"))
			ct, err := time.Parse(time.RFC3339Nano, str(tok, "createTime"))
			if err != nil {
				t.Fatal(err)
			}
			created = append(created, ct)
		}
		next := str(page, "nextPageToken")
		if next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q.Set("page_token", next)
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3 (2+2+1)", pages)
	}
	slices.Reverse(want) // create_time desc
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q (newest first)", got, want)
	}
	if !slices.IsSortedFunc(created, func(a, b time.Time) int { return b.Compare(a) }) {
		t.Errorf("createTimes not descending: %v", created)
	}

	t.Run("PageTokenOfAnotherQuery", func(t *testing.T) {
		q.Set("type", "TOKEN_TYPE_FULL_ACCESS")
		r := ts.do(t, "GET", "/v1/tokens?"+q.Encode(), ts.root, "")
		checkError(t, r, http.StatusBadRequest, codes.InvalidArgument)
	})
	t.Run("DefaultOrderIsName", func(t *testing.T) {
		page := mustOK(t, ts.do(t, "GET", "/v1/tokens", ts.root, ""))
		list, _ := page["tokens"].([]any)
		var names []string
		for _, tok := range list {
			names = append(names, strings.ToLower(str(tok, "name")))
		}
		if !slices.IsSorted(names) || len(names) != 12 {
			t.Errorf("names %q: want 12, sorted", names)
		}
	})
	t.Run("CamelCaseQuery", func(t *testing.T) {
		page := mustOK(t, ts.do(t, "GET", "/v1/tokens?pageSize=1&kind=TOKEN_KIND_ADMIN&orderBy=create_time%20desc", ts.root, ""))
		list, _ := page["tokens"].([]any)
		if len(list) != 1 || str(list[0], "name") != "admin-ro-7d" {
			t.Errorf("tokens %v, want the newest admin token", list)
		}
	})
}

func TestRESTOperationalEndpoints(t *testing.T) {
	ts := startServer(t, server.Config{})
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := ts.do(t, "GET", path, "", ""); r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}

	t.Run("OpenAPI", func(t *testing.T) {
		r := ts.do(t, "GET", "/openapi.json", "", "")
		doc := mustOK(t, r)
		if doc["swagger"] != "2.0" {
			t.Errorf("swagger = %v, want 2.0", doc["swagger"])
		}
		paths, _ := doc["paths"].(map[string]any)
		for _, p := range []string{"/v1/tokens", "/v1/tokens/{id}", "/v1/tokens/{id}:regenerate", "/v1/tokens:introspect", "/v1/tokens/{token.id}", "/v1/actions", "/v1/actions:register"} {
			if _, ok := paths[p]; !ok {
				t.Errorf("openapi.json lacks the path %s", p)
			}
		}
	})
}

func TestRESTCredentialHeaders(t *testing.T) {
	ts := startServer(t, server.Config{})
	tests := []struct {
		name   string
		header []string
	}{
		{"SeveralAuthorizationHeaders", []string{"Authorization", "Bearer " + ts.root, "Authorization", "Bearer " + ts.root}},
		{"GrpcMetadataAuthorization", []string{"Grpc-Metadata-Authorization", "Bearer " + ts.root}},
		{"LowerCaseGrpcMetadata", []string{"grpc-metadata-authorization", "Bearer " + ts.root}},
		{"BasicScheme", []string{"Authorization", "Basic " + ts.root}},
		{"NoScheme", []string{"Authorization", ts.root}},
		{"EmptyBearer", []string{"Authorization", "Bearer "}},
		{"XAuthorization", []string{"X-Authorization", "Bearer " + ts.root}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, "GET", "/v1/tokens", "", "", tt.header...)
			checkError(t, r, http.StatusUnauthorized, codes.Unauthenticated)
		})
	}
	t.Run("LowerCaseBearer", func(t *testing.T) {
		mustOK(t, ts.do(t, "GET", "/v1/tokens", "", "", "Authorization", "bearer "+ts.root))
	})
}
