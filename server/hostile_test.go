package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// TestHostileInput sweeps hostile input over both transports: invalid UTF-8, control characters and NUL bytes in every string field,
// oversized and deeply nested bodies, wrong JSON types, 10⁵ permissions,
// bad page sizes, forged and stale page tokens, unknown enums, ids with path
// characters and odd credential headers. Every input gets a clear refusal (a
// 4xx whose gRPC code is neither Internal nor Unknown, naming the field where
// there is one), the server stays healthy, and neither the tokens, the
// catalog nor the audit trail change. Damping is off so that the many
// refusals do not lock the test's own address out.
func TestHostileInput(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1})
	fx := newHostileFixture(t, ts)
	before := fx.state(t)

	t.Run("REST", func(t *testing.T) { fx.restSweep(t) })
	t.Run("RESTOversized", func(t *testing.T) { fx.restOversized(t) })
	t.Run("RESTRawHeaders", func(t *testing.T) { fx.restRawHeaders(t) })
	t.Run("GRPC", func(t *testing.T) { fx.grpcSweep(t) })

	fx.healthy(t)
	if after := fx.state(t); !after.equal(before) {
		t.Errorf("hostile input changed the store:\nbefore: %s\nafter:  %s", before, after)
	}
	fx.report(t)
}

// TestHostileGRPCInvalidUTF8: a gRPC request whose string field holds
// invalid UTF-8 is not valid proto3; the refusal must be the client's fault
// (InvalidArgument), not the server's (Internal), and change nothing.
func TestHostileGRPCInvalidUTF8(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1})
	fx := newHostileFixture(t, ts)
	before := fx.state(t)
	fx.grpcInvalidUTF8(t)
	if after := fx.state(t); !after.equal(before) {
		t.Errorf("invalid UTF-8 changed the store")
	}
	fx.report(t)
}

// TestHostileTrailingJSON: a REST body is one JSON value; anything after it
// is refused like an unknown field, not silently dropped (the first value
// must not be acted on).
func TestHostileTrailingJSON(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1})
	fx := newHostileFixture(t, ts)
	before := fx.state(t)
	for _, c := range []restCase{
		{endpoint: "CreateToken", name: "SecondObject", method: "POST", path: "/v1/tokens", body: `{"name":"first"} {"name":"second"}`, want: 400},
		{endpoint: "CreateToken", name: "Garbage", method: "POST", path: "/v1/tokens", body: `{"name":"third"}garbage`, want: 400},
		{endpoint: "UpdateToken", name: "SecondObject", method: "PATCH", path: "/v1/tokens/" + fx.apiID, body: `{"description":"first"}{"name":"x"}`, want: 400},
		{endpoint: "RegenerateToken", name: "Garbage", method: "POST", path: "/v1/tokens/" + fx.apiID + ":regenerate", body: `{}]`, want: 400},
		{endpoint: "RegisterActions", name: "SecondObject", method: "POST", path: "/v1/actions:register", body: `{"actions":[{"id":"api::first.x.find"}]}{}`, want: 400},
	} {
		t.Run(c.endpoint+"/"+c.name, func(t *testing.T) { fx.runREST(t, c) })
	}
	if after := fx.state(t); !after.equal(before) {
		t.Errorf("a body with trailing data changed the store")
	}
	fx.report(t)
}

// TestHostileErrorSize: an UpdateToken whose update_mask lists 10⁵ bad paths
// is refused like any other bad request: InvalidArgument / 400 with a
// bounded answer. (One field violation per path would make a gRPC trailer
// over the client's header-list limit, which the client sees as a broken
// connection, and a REST answer many times the request's size.)
func TestHostileErrorSize(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1})
	fx := newHostileFixture(t, ts)
	before := fx.state(t)
	paths := make([]string, 100_000)
	for i := range paths {
		paths[i] = fmt.Sprintf("p%d", i)
	}
	t.Run("GRPC", func(t *testing.T) {
		fx.count("gRPC UpdateToken")
		_, err := ts.client.UpdateToken(withSecret(ts.root), &tokendv1.UpdateTokenRequest{
			Token:      &tokendv1.Token{Id: fx.apiID, Name: "x"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		})
		checkGRPCRefusal(t, "HundredThousandMaskPaths", err, codes.InvalidArgument, "update_mask")
		if n := len(status.Convert(err).Message()); n > 64<<10 {
			t.Errorf("error message of %d bytes", n)
		}
	})
	t.Run("REST", func(t *testing.T) {
		fx.count("REST UpdateToken")
		r := ts.do(t, "PATCH", "/v1/tokens/"+fx.apiID+"?updateMask="+strings.Join(paths, ","), ts.root, `{"name":"x"}`)
		checkRefusal(t, "HundredThousandMaskPaths", r, 400, "update_mask")
		if len(r.body) > 64<<10 {
			t.Errorf("a %d-byte request got a %d-byte error answer", len(strings.Join(paths, ","))+64, len(r.body))
		}
	})
	fx.healthy(t)
	if after := fx.state(t); !after.equal(before) {
		t.Errorf("the refused update changed the store")
	}
	fx.report(t)
}

// hostileFixture is the server under attack, the objects the attacks aim
// at, and the count of inputs tried per endpoint.
type hostileFixture struct {
	ts *testServer
	// apiID and adminID are existing tokens, so that a bad field is the
	// only thing wrong with an update or a regeneration.
	apiID, adminID string
	apiSecret      string
	// pageNames is a next_page_token of ListTokens in name order and
	// pageCreated one in create_time order; pageAudit is one of
	// ListAuditEvents.
	pageNames, pageCreated, pageAudit string

	mu     sync.Mutex
	counts map[string]int // "REST CreateToken" → inputs tried
}

func newHostileFixture(t *testing.T, ts *testServer) *hostileFixture {
	t.Helper()
	fx := &hostileFixture{ts: ts, counts: map[string]int{}}
	ctx := withSecret(ts.root)
	if _, err := ts.client.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find"}, {Id: "api::article.article.create"},
	}}); err != nil {
		t.Fatal(err)
	}
	api, secret := ts.createToken(t, &tokendv1.Token{Name: "hostile api", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"api::article.article.find"}})
	admin, _ := ts.createToken(t, &tokendv1.Token{Name: "hostile admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	fx.apiID, fx.adminID, fx.apiSecret = api.GetId(), admin.GetId(), secret
	byName, err := ts.client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1})
	if err != nil || byName.GetNextPageToken() == "" {
		t.Fatalf("ListTokens: %v, next %q", err, byName.GetNextPageToken())
	}
	byCreated, err := ts.client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1, OrderBy: "create_time desc"})
	if err != nil || byCreated.GetNextPageToken() == "" {
		t.Fatalf("ListTokens: %v, next %q", err, byCreated.GetNextPageToken())
	}
	audit, err := ts.client.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: 1})
	if err != nil || audit.GetNextPageToken() == "" {
		t.Fatalf("ListAuditEvents: %v, next %q", err, audit.GetNextPageToken())
	}
	fx.pageNames, fx.pageCreated, fx.pageAudit = byName.GetNextPageToken(), byCreated.GetNextPageToken(), audit.GetNextPageToken()
	return fx
}

func (fx *hostileFixture) count(endpoint string) {
	fx.mu.Lock()
	fx.counts[endpoint]++
	fx.mu.Unlock()
}

// report logs the number of inputs tried per endpoint.
func (fx *hostileFixture) report(t *testing.T) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	keys := make([]string, 0, len(fx.counts))
	total := 0
	for k, n := range fx.counts {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-28s %4d", k, fx.counts[k])
	}
	t.Logf("hostile inputs tried per endpoint (%d in all):%s", total, b.String())
}

// hostileState is what no refused request may change: every token (without
// its last-use time, which authenticating as root updates), the action
// catalog and the audit trail.
type hostileState struct {
	tokens, actions, audit []byte
}

func (fx *hostileFixture) state(t *testing.T) hostileState {
	t.Helper()
	ctx := withSecret(fx.ts.root)
	tl, err := fx.ts.client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tl.GetTokens() {
		tok.LastUsedTime = nil
	}
	al, err := fx.ts.client.ListActions(ctx, &tokendv1.ListActionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := fx.ts.client.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return hostileState{marshal(tl), marshal(al), marshal(ev)}
}

func (s hostileState) equal(o hostileState) bool {
	return bytes.Equal(s.tokens, o.tokens) && bytes.Equal(s.actions, o.actions) && bytes.Equal(s.audit, o.audit)
}

func (s hostileState) String() string {
	return fmt.Sprintf("tokens %x… (%d B), actions %d B, audit %d B", s.tokens[:min(8, len(s.tokens))], len(s.tokens), len(s.actions), len(s.audit))
}

// healthy fails unless both transports still answer their health checks.
func (fx *hostileFixture) healthy(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := fx.ts.do(t, "GET", p, "", ""); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	resp, err := healthpb.NewHealthClient(fx.ts.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v, %v", resp, err)
	}
}

// The hostile strings put in string fields. Those under rawJSON are bytes
// JSON cannot carry (invalid UTF-8, raw control bytes) and are sent as is;
// the others are valid UTF-8 that no field accepts (control characters,
// NUL), JSON-escaped.
var (
	hostileRaw = []struct{ name, s string }{
		{"InvalidUTF8", "a\xff\xfeb"},
		{"Overlong", "\xc0\xaf"},
		{"Truncated", "a\xe2\x82"},
		{"Surrogate", "\xed\xa0\x80"},
		{"RawControl", "a\x01b"},
		{"RawNUL", "a\x00b"},
	}
	hostileEscaped = []struct{ name, s string }{
		{"NUL", "a\x00b"},
		{"OnlyNUL", "\x00"},
		{"Control", "a\x01b"},
		{"Escape", "\x1b[31mred"},
		{"DEL", "a\x7fb"},
		{"C1", "a\u0085b"},
		{"Backspace", "ab\bc"},
	}
)

// jsonString is s as a JSON string literal; raw strings keep their bytes.
func jsonString(s string, raw bool) string {
	if raw {
		return `"` + s + `"`
	}
	b, _ := json.Marshal(s) // escapes control characters as \u00XX
	return string(b)
}

// restCase is one hostile REST request and what its refusal must say.
type restCase struct {
	endpoint     string
	name         string
	method, path string
	body         string
	// secret is the credential ("" = root; "-" = none).
	secret string
	header []string
	// want is the exact status, 0 for any 4xx.
	want int
	// field, when set, must be named by the error (BadRequest details or
	// message), in snake_case or lowerCamelCase.
	field string
	// pos accepts, instead of the field, the position a JSON decoding
	// error gives ("(line 1:12)"): protojson's syntax errors name no field.
	pos bool
	// check, when set, replaces the refusal checks (for inputs that are
	// answered, not refused, like a malformed secret to introspect).
	check func(t *testing.T, r *restResponse)
}

func (fx *hostileFixture) runREST(t *testing.T, c restCase) {
	t.Helper()
	fx.count("REST " + c.endpoint)
	secret := c.secret
	switch secret {
	case "":
		secret = fx.ts.root
	case "-":
		secret = ""
	}
	req, err := http.NewRequest(c.method, fx.ts.base+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if c.body == "" {
		req.Body, req.ContentLength = nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		req.Header.Add(c.header[i], c.header[i+1])
	}
	r := send(t, req)
	if c.check != nil {
		c.check(t, r)
		return
	}
	field := c.field
	if c.pos && jsonPosition.Match(r.body) {
		field = ""
	}
	checkRefusal(t, c.name, r, c.want, field)
}

// jsonPosition matches the position protojson gives in its errors.
var jsonPosition = regexp.MustCompile(`\(line \d+:\d+\)`)

// checkRefusal checks a REST refusal: a 4xx (or exactly want), never a 5xx;
// a JSON {code, message, details} body whose code is neither Internal nor
// Unknown; the field named when one is given.
func checkRefusal(t *testing.T, name string, r *restResponse, want int, field string) {
	t.Helper()
	if r.status < 400 || r.status > 499 || (want != 0 && r.status != want) {
		t.Errorf("%s: status %d, want %s; body %.300s", name, r.status, wantText(want), r.body)
		return
	}
	var body struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Code == nil {
		t.Errorf("%s: status %d with a body that is not a JSON error (%v): %.300s", name, r.status, err, r.body)
		return
	}
	if c := codes.Code(*body.Code); c == codes.Internal || c == codes.Unknown || c == codes.OK {
		t.Errorf("%s: gRPC code %v in a %d answer: %s", name, c, r.status, body.Message)
	}
	if field == "" {
		return
	}
	var generic map[string]any
	json.Unmarshal(r.body, &generic)
	names := fieldViolations(t, generic)
	for _, f := range fieldSpellings(field) {
		if slices.Contains(names, f) || strings.Contains(body.Message, f) {
			return
		}
	}
	t.Errorf("%s: the error does not name %q (fields %q, message %q)", name, field, names, body.Message)
}

func wantText(want int) string {
	if want == 0 {
		return "a 4xx"
	}
	return fmt.Sprint(want)
}

// fieldSpellings returns a field path as proto (snake_case) and as JSON
// (lowerCamelCase) spell it.
func fieldSpellings(field string) []string {
	var camel strings.Builder
	up := false
	for _, r := range field {
		switch {
		case r == '_':
			up = true
		case up:
			camel.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			camel.WriteRune(r)
		}
	}
	// The last segment alone too: JSON decoding errors name the field
	// without its message path ("invalid value for string field name").
	last := field[strings.LastIndexByte(field, '.')+1:]
	if i := strings.IndexByte(last, '['); i >= 0 {
		last = last[:i]
	}
	return []string{field, camel.String(), last}
}

// inactive returns a check for inputs that are answered 200 with an
// inactive introspection rather than refused.
func inactive(reason string) func(t *testing.T, r *restResponse) {
	return func(t *testing.T, r *restResponse) {
		t.Helper()
		if r.status != http.StatusOK {
			t.Errorf("status %d, want 200 with %s; body %.300s", r.status, reason, r.body)
			return
		}
		var v map[string]any
		if err := json.Unmarshal(r.body, &v); err != nil || v["active"] != false || v["inactiveReason"] != reason {
			t.Errorf("answer %s, want inactive %s", r.body, reason)
		}
	}
}

// emptyList returns a check for filters that match nothing: 200 and no
// items (a filter value that names no token is not an error).
func emptyList(key string) func(t *testing.T, r *restResponse) {
	return func(t *testing.T, r *restResponse) {
		t.Helper()
		if r.status != http.StatusOK {
			checkRefusal(t, "filter", r, 0, "")
			return
		}
		var v map[string]any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Errorf("body %s: %v", r.body, err)
			return
		}
		if items, _ := v[key].([]any); len(items) != 0 {
			t.Errorf("a filter naming no token matched %d items", len(items))
		}
	}
}

func (fx *hostileFixture) restSweep(t *testing.T) {
	q := url.QueryEscape
	var cases []restCase
	add := func(c restCase) { cases = append(cases, c) }

	// Strings in JSON bodies: every string field of every request body.
	for _, raw := range []bool{true, false} {
		set := hostileEscaped
		if raw {
			set = hostileRaw
		}
		for _, h := range set {
			s := jsonString(h.s, raw)
			// Raw bytes make the JSON itself invalid: the decoder refuses
			// it, naming the position rather than a field.
			field := func(f string) string {
				if raw {
					return ""
				}
				return f
			}
			add(restCase{endpoint: "CreateToken", name: "CreateName" + h.name, method: "POST", path: "/v1/tokens", body: `{"name":` + s + `}`, want: 400, field: field("token.name")})
			add(restCase{endpoint: "CreateToken", name: "CreateDescription" + h.name, method: "POST", path: "/v1/tokens", body: `{"name":"ok","description":` + s + `}`, want: 400, field: field("token.description")})
			add(restCase{endpoint: "CreateToken", name: "CreatePermission" + h.name, method: "POST", path: "/v1/tokens", body: `{"name":"ok","type":"TOKEN_TYPE_CUSTOM","permissions":["api::article.article.find",` + s + `]}`, want: 400, field: field("token.permissions[1]")})
			add(restCase{endpoint: "CreateToken", name: "CreateKindName" + h.name, method: "POST", path: "/v1/tokens", body: `{"name":"ok","kind":` + s + `}`, want: 400, field: ""})
			add(restCase{endpoint: "CreateToken", name: "CreateIgnoredID" + h.name, method: "POST", path: "/v1/tokens", body: `{"id":` + s + `,"name":` + s + `}`, want: 400, field: field("token.name")})
			add(restCase{endpoint: "UpdateToken", name: "UpdateName" + h.name, method: "PATCH", path: "/v1/tokens/" + fx.apiID, body: `{"name":` + s + `}`, want: 400, field: field("token.name")})
			add(restCase{endpoint: "UpdateToken", name: "UpdateDescription" + h.name, method: "PATCH", path: "/v1/tokens/" + fx.apiID, body: `{"description":` + s + `}`, want: 400, field: field("token.description")})
			add(restCase{endpoint: "UpdateToken", name: "UpdatePermission" + h.name, method: "PATCH", path: "/v1/tokens/" + fx.apiID, body: `{"permissions":[` + s + `]}`, want: 400, field: field("token.permissions[0]")})
			add(restCase{endpoint: "RegenerateToken", name: "RegenerateBodyID" + h.name, method: "POST", path: "/v1/tokens/" + fx.apiID + ":regenerate", body: `{"id":` + s + `,"gracePeriod":"-1s"}`, want: 400})
			add(restCase{endpoint: "IntrospectToken", name: "IntrospectAction" + h.name, method: "POST", path: "/v1/tokens:introspect", body: `{"token":"x","actions":["a.find",` + s + `]}`, want: 400, field: field("actions[1]")})
			add(restCase{endpoint: "RegisterActions", name: "RegisterID" + h.name, method: "POST", path: "/v1/actions:register", body: `{"actions":[{"id":` + s + `}]}`, want: 400, field: field("actions[0].id")})
			add(restCase{endpoint: "RegisterActions", name: "RegisterDescription" + h.name, method: "POST", path: "/v1/actions:register", body: `{"actions":[{"id":"api::x.y.find","description":` + s + `}]}`, want: 400, field: field("actions[0].description")})
			if raw {
				add(restCase{endpoint: "IntrospectToken", name: "IntrospectToken" + h.name, method: "POST", path: "/v1/tokens:introspect", body: `{"token":` + s + `}`, want: 400})
			} else {
				// A token string that is not a secret is an answer, not an
				// error: inactive, MALFORMED.
				add(restCase{endpoint: "IntrospectToken", name: "IntrospectToken" + h.name, method: "POST", path: "/v1/tokens:introspect", body: `{"token":` + s + `}`, check: inactive("INACTIVE_REASON_MALFORMED")})
			}
		}
	}

	// Strings in paths and queries: percent-encoded bytes reach the
	// service as they are, valid UTF-8 or not.
	pathIDs := []struct{ name, seg string }{
		{"InvalidUTF8", "%FF%FE"}, {"NUL", "%00"}, {"NULInside", fx.apiID + "%00"}, {"Control", "%01%1B"},
		{"DotDotSlash", "..%2F..%2Fhealthz"}, {"DotDotSlashLower", "..%2f"}, {"EncodedDots", "%2E%2E"},
		{"Backslash", "..%5C..%5C"}, {"Newline", "a%0D%0Ab"}, {"Space", "%20"}, {"Semicolon", fx.apiID + ";x"},
		{"Query", fx.apiID + "%3Fx=1"}, {"Hash", fx.apiID + "%23"}, {"Long", strings.Repeat("a", 16<<10)},
		{"LongUTF8", strings.Repeat("%C3%A9", 2<<10)}, {"Colon", fx.apiID + "%3Aregenerate"}, {"Percent", "%25"},
		{"Plus", "a+b"}, {"OtherCase", strings.ToUpper(fx.apiID)},
	}
	for _, p := range pathIDs {
		// net/http refuses a query with a semicolon before any field is
		// parsed: the error names the separator, not a field.
		queryField := func(f string) string {
			if p.name == "Semicolon" {
				return ""
			}
			return f
		}
		add(restCase{endpoint: "GetToken", name: "GetID" + p.name, method: "GET", path: "/v1/tokens/" + p.seg})
		add(restCase{endpoint: "DeleteToken", name: "DeleteID" + p.name, method: "DELETE", path: "/v1/tokens/" + p.seg})
		add(restCase{endpoint: "UpdateToken", name: "UpdateID" + p.name, method: "PATCH", path: "/v1/tokens/" + p.seg, body: `{"name":"renamed by a hostile id"}`})
		add(restCase{endpoint: "RegenerateToken", name: "RegenerateID" + p.name, method: "POST", path: "/v1/tokens/" + p.seg + ":regenerate", body: `{}`})
		add(restCase{endpoint: "ListAuditEvents", name: "AuditTarget" + p.name, method: "GET", path: "/v1/auditEvents?targetId=" + p.seg, check: emptyList("auditEvents")})
		add(restCase{endpoint: "ListTokens", name: "PageToken" + p.name, method: "GET", path: "/v1/tokens?pageToken=" + p.seg, want: 400, field: queryField("page_token")})
		add(restCase{endpoint: "ListAuditEvents", name: "AuditPageToken" + p.name, method: "GET", path: "/v1/auditEvents?pageToken=" + p.seg, want: 400, field: queryField("page_token")})
		if p.name != "Space" { // a blank order_by is the default order
			add(restCase{endpoint: "ListTokens", name: "OrderBy" + p.name, method: "GET", path: "/v1/tokens?orderBy=" + p.seg, want: 400, field: queryField("order_by")})
		}
	}
	// A token id in the body of a PATCH must not retarget it.
	add(restCase{endpoint: "UpdateToken", name: "BodyIDDiffers", method: "PATCH", path: "/v1/tokens/%00", body: `{"id":"` + fx.apiID + `","name":"retargeted"}`})

	// Wrong JSON types.
	for _, b := range []struct{ name, body, field string }{
		{"NameNumber", `{"name":5}`, "name"},
		{"NameTrue", `{"name":true}`, "name"},
		{"NameObject", `{"name":{}}`, "name"},
		{"NameArray", `{"name":["a"]}`, "name"},
		{"NameNull", `{"name":null}`, "token.name"},
		{"DescriptionNumber", `{"name":"ok","description":1e400}`, "description"},
		{"PermissionsObject", `{"name":"ok","type":"TOKEN_TYPE_CUSTOM","permissions":{}}`, "permissions"},
		{"PermissionsString", `{"name":"ok","type":"TOKEN_TYPE_CUSTOM","permissions":"api::article.article.find"}`, "permissions"},
		{"PermissionsNumbers", `{"name":"ok","type":"TOKEN_TYPE_CUSTOM","permissions":[1,2]}`, "permissions"},
		{"PermissionsNested", `{"name":"ok","type":"TOKEN_TYPE_CUSTOM","permissions":[["api::article.article.find"]]}`, "permissions"},
		{"KindObject", `{"name":"ok","kind":{}}`, "kind"},
		{"KindFloat", `{"name":"ok","kind":1.5}`, "kind"},
		{"KindUnknownName", `{"name":"ok","kind":"TOKEN_KIND_ROOT"}`, "token.kind"},
		{"KindUnknownNumber", `{"name":"ok","kind":7}`, "token.kind"},
		{"KindNegative", `{"name":"ok","kind":-1}`, "token.kind"},
		{"KindHuge", `{"name":"ok","kind":4294967296}`, "kind"},
		{"TypeUnknownName", `{"name":"ok","type":"TOKEN_TYPE_ROOT"}`, "token.type"},
		{"TypeUnknownNumber", `{"name":"ok","type":42}`, "token.type"},
		{"TypeLowerCase", `{"name":"ok","type":"token_type_full_access"}`, "token.type"},
		{"LifespanNumber", `{"name":"ok","lifespan":604800}`, "lifespan"},
		{"LifespanNegative", `{"name":"ok","lifespan":"-604800s"}`, "token.lifespan"},
		{"LifespanHuge", `{"name":"ok","lifespan":"315576000001s"}`, "lifespan"},
		{"LifespanNotAPreset", `{"name":"ok","lifespan":"604801s"}`, "token.lifespan"},
		{"ExpireTimeGarbage", `{"name":"ok","expireTime":"yesterday"}`, "token.expire_time"},
		{"TopLevelArray", `[{"name":"ok"}]`, ""},
		{"TopLevelString", `"ok"`, ""},
		{"TopLevelNull", `null`, ""},
		{"DuplicateKey", `{"name":"ok","name":"\u0000"}`, ""},
		{"UnknownField", `{"name":"ok","secret":"tkd_x"}`, "secret"},
		{"Truncated", `{"name":"ok"`, ""},
	} {
		add(restCase{endpoint: "CreateToken", name: "Type" + b.name, method: "POST", path: "/v1/tokens", body: b.body, want: 400, field: b.field, pos: true})
	}
	for _, b := range []struct{ name, body, field string }{
		{"GraceString", `{"gracePeriod":"soon"}`, "grace_period"},
		{"GraceNegative", `{"gracePeriod":"-1s"}`, "grace_period"},
		{"GraceOverADay", `{"gracePeriod":"86401s"}`, "grace_period"},
		{"GraceHuge", `{"gracePeriod":"315576000000s"}`, "grace_period"},
		{"GraceNumber", `{"gracePeriod":60}`, "grace_period"},
		{"IDNumber", `{"id":5}`, "id"},
	} {
		add(restCase{endpoint: "RegenerateToken", name: "Type" + b.name, method: "POST", path: "/v1/tokens/" + fx.apiID + ":regenerate", body: b.body, want: 400, field: b.field, pos: true})
	}
	for _, b := range []struct{ name, body, field string }{
		{"TokenNumber", `{"token":5}`, "token"},
		{"ActionsString", `{"token":"x","actions":"a.find"}`, "actions"},
		{"ActionsObject", `{"token":"x","actions":{"a":"b"}}`, "actions"},
		{"ActionInvalid", `{"token":"x","actions":["../a"]}`, "actions[0]"},
		{"TooManyActions", `{"token":"x","actions":[` + strings.TrimSuffix(strings.Repeat(`"a.find",`, 1001), ",") + `]}`, "actions"},
	} {
		add(restCase{endpoint: "IntrospectToken", name: "Type" + b.name, method: "POST", path: "/v1/tokens:introspect", body: b.body, want: 400, field: b.field, pos: true})
	}
	for _, b := range []struct{ name, body, field string }{
		{"ActionsObject", `{"actions":{"id":"a.b"}}`, "actions"},
		{"ActionString", `{"actions":["a.b"]}`, "actions"},
		{"IDNumber", `{"actions":[{"id":1}]}`, "id"},
		{"Empty", `{"actions":[]}`, "actions"},
		{"Reserved", `{"actions":[{"id":"tokend.token.create"}]}`, "actions[0].id"},
		{"Duplicate", `{"actions":[{"id":"a.b"},{"id":"a.b"}]}`, "actions[1].id"},
		{"TooLong", `{"actions":[{"id":"a.` + strings.Repeat("b", 199) + `"}]}`, "actions[0].id"},
	} {
		add(restCase{endpoint: "RegisterActions", name: "Type" + b.name, method: "POST", path: "/v1/actions:register", body: b.body, want: 400, field: b.field, pos: true})
	}
	for _, b := range []struct{ name, query, body, field string }{
		{"MaskUnknownPath", "?updateMask=secret_hint", `{"name":"x"}`, "update_mask"},
		{"MaskID", "?updateMask=id", `{"name":"x"}`, "update_mask"},
		{"MaskKind", "?updateMask=kind", `{"kind":"TOKEN_KIND_ADMIN"}`, "update_mask"},
		{"MaskNUL", "?updateMask=%00", `{"name":"x"}`, "update_mask"},
		{"MaskInvalidUTF8", "?updateMask=%FF", `{"name":"x"}`, "update_mask"},
		{"BodyKind", "", `{"kind":"TOKEN_KIND_ADMIN"}`, "update_mask"},
		{"BodyPermissionsOnReadOnly", "", `{"permissions":["api::article.article.find"],"type":"TOKEN_TYPE_READ_ONLY"}`, "token.permissions"},
		{"EmptyBody", "", `{}`, "update_mask"},
		{"NameNumber", "", `{"name":1}`, "name"},
	} {
		add(restCase{endpoint: "UpdateToken", name: "Type" + b.name, method: "PATCH", path: "/v1/tokens/" + fx.apiID + b.query, body: b.body, want: 400, field: b.field, pos: true})
	}

	// Deeply nested JSON: 10⁵ levels of arrays and of objects.
	const depth = 100_000
	arrays := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	objects := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	for _, n := range []struct{ name, v string }{{"Arrays", arrays}, {"Objects", objects}} {
		add(restCase{endpoint: "CreateToken", name: "Nested" + n.name + "AsBody", method: "POST", path: "/v1/tokens", body: n.v, want: 400})
		add(restCase{endpoint: "CreateToken", name: "Nested" + n.name + "InName", method: "POST", path: "/v1/tokens", body: `{"name":` + n.v + `}`, want: 400})
		add(restCase{endpoint: "CreateToken", name: "Nested" + n.name + "InPermissions", method: "POST", path: "/v1/tokens", body: `{"name":"ok","permissions":` + n.v + `}`, want: 400})
		add(restCase{endpoint: "IntrospectToken", name: "Nested" + n.name + "InActions", method: "POST", path: "/v1/tokens:introspect", body: `{"token":"x","actions":` + n.v + `}`, want: 400})
		add(restCase{endpoint: "RegisterActions", name: "Nested" + n.name + "InActions", method: "POST", path: "/v1/actions:register", body: `{"actions":` + n.v + `}`, want: 400})
		add(restCase{endpoint: "UpdateToken", name: "Nested" + n.name + "InBody", method: "PATCH", path: "/v1/tokens/" + fx.apiID, body: `{"description":` + n.v + `}`, want: 400})
		add(restCase{endpoint: "RegenerateToken", name: "Nested" + n.name + "InBody", method: "POST", path: "/v1/tokens/" + fx.apiID + ":regenerate", body: `{"gracePeriod":` + n.v + `}`, want: 400})
	}

	// 10⁵ permissions and 10⁵ actions (under the 1 MiB body limit).
	hundredK := func(item string) string {
		return strings.TrimSuffix(strings.Repeat(item+",", 100_000), ",")
	}
	add(restCase{endpoint: "CreateToken", name: "HundredThousandPermissions", method: "POST", path: "/v1/tokens", body: `{"name":"ok","type":"TOKEN_TYPE_CUSTOM","permissions":[` + hundredK(`"a.b"`) + `]}`, want: 400, field: "token.permissions"})
	add(restCase{endpoint: "CreateToken", name: "HundredThousandAdminPermissions", method: "POST", path: "/v1/tokens", body: `{"name":"ok","kind":"TOKEN_KIND_ADMIN","type":"TOKEN_TYPE_CUSTOM","permissions":[` + hundredK(`"a.b"`) + `]}`, want: 400, field: "token.permissions"})
	add(restCase{endpoint: "UpdateToken", name: "HundredThousandPermissions", method: "PATCH", path: "/v1/tokens/" + fx.apiID, body: `{"permissions":[` + hundredK(`"a.b"`) + `]}`, want: 400, field: "token.permissions"})
	add(restCase{endpoint: "IntrospectToken", name: "HundredThousandActions", method: "POST", path: "/v1/tokens:introspect", body: `{"token":"x","actions":[` + hundredK(`"a.b"`) + `]}`, want: 400, field: "actions"})
	add(restCase{endpoint: "RegisterActions", name: "HundredThousandActions", method: "POST", path: "/v1/actions:register", body: `{"actions":[` + hundredK(`{}`) + `]}`, want: 400, field: "actions"})

	// Page sizes, enums and times in queries.
	for _, v := range []struct{ name, query, field string }{
		{"Negative", "pageSize=-1", "page_size"},
		{"MinInt32", "pageSize=-2147483648", "page_size"},
		{"OverMax", "pageSize=1001", "page_size"},
		{"MaxInt32", "pageSize=2147483647", "page_size"},
		{"OverInt32", "pageSize=2147483648", "page_size"},
		{"Huge", "pageSize=99999999999999999999999", "page_size"},
		{"Float", "pageSize=1.5", "page_size"},
		{"Word", "pageSize=ten", "page_size"},
		{"Hex", "pageSize=0x10", "page_size"},
		{"Empty", "pageSize=", "page_size"},
		{"Twice", "pageSize=1&pageSize=2", "page_size"},
		{"SnakeCaseNegative", "page_size=-5", "page_size"},
	} {
		add(restCase{endpoint: "ListTokens", name: "PageSize" + v.name, method: "GET", path: "/v1/tokens?" + v.query, want: 400, field: v.field})
		add(restCase{endpoint: "ListAuditEvents", name: "PageSize" + v.name, method: "GET", path: "/v1/auditEvents?" + v.query, want: 400, field: v.field})
	}
	for _, v := range []struct{ name, query, field string }{
		{"KindUnknownName", "kind=TOKEN_KIND_ROOT", "kind"},
		{"KindUnknownNumber", "kind=7", "kind"},
		{"KindNegative", "kind=-1", "kind"},
		{"KindInvalidUTF8", "kind=%FF", "kind"},
		{"TypeUnknownName", "type=TOKEN_TYPE_ROOT", "type"},
		{"TypeUnknownNumber", "type=99", "type"},
		{"TypeNUL", "type=%00", "type"},
		{"ExpireBeforeGarbage", "expireBefore=tomorrow", "expire_before"},
		{"ExpireBeforeOutOfRange", "expireBefore=" + q("10000-01-01T00:00:00Z"), "expire_before"},
		{"ExpireBeforeNUL", "expireBefore=%00", "expire_before"},
		{"OrderByUnknown", "orderBy=secret_hash", "order_by"},
		{"OrderByInjection", "orderBy=" + q("name; DROP TABLE tokens"), "order_by"},
	} {
		add(restCase{endpoint: "ListTokens", name: v.name, method: "GET", path: "/v1/tokens?" + v.query, want: 400, field: v.field})
	}
	for _, v := range []struct{ name, query string }{
		{"KindUnknownName", "kind=TOKEN_KIND_ROOT"}, {"KindUnknownNumber", "kind=7"}, {"KindNUL", "kind=%00"}, {"KindInvalidUTF8", "kind=%FF"},
	} {
		add(restCase{endpoint: "ListActions", name: v.name, method: "GET", path: "/v1/actions?" + v.query, want: 400, field: "kind"})
	}

	// Forged and stale page tokens.
	tagOf := func(pt string) string { return pt[strings.LastIndexByte(pt, '~'):] }
	b64 := base64.RawURLEncoding.EncodeToString
	forged := []struct{ name, pt string }{
		{"RandomBase64", b64([]byte("\x8f\x11\x02\xffrandom bytes"))},
		{"RandomWithTag", b64([]byte("\x8f\x11\x02\xff")) + tagOf(fx.pageNames)},
		{"StdBase64", base64.StdEncoding.EncodeToString([]byte("n/+hostile")) + tagOf(fx.pageNames)},
		{"EmptyCursor", tagOf(fx.pageNames)},
		{"OnlyTilde", "~"},
		{"WrongMarker", b64([]byte("zroot")) + tagOf(fx.pageNames)},
		{"Truncated", fx.pageNames[:len(fx.pageNames)/2]},
		{"Doubled", fx.pageNames + fx.pageNames},
		{"AuditTokenForTokens", fx.pageAudit},
		{"CreatedTokenForNames", fx.pageCreated},
		{"Long", strings.Repeat("A", 64<<10) + tagOf(fx.pageNames)},
	}
	for _, f := range forged {
		add(restCase{endpoint: "ListTokens", name: "Forged" + f.name, method: "GET", path: "/v1/tokens?pageToken=" + q(f.pt), want: 400, field: "page_token"})
		pt := f.pt
		if f.name == "AuditTokenForTokens" {
			pt = fx.pageNames // a token listing's cursor for the audit trail
		}
		add(restCase{endpoint: "ListAuditEvents", name: "Forged" + f.name, method: "GET", path: "/v1/auditEvents?pageToken=" + q(pt), want: 400, field: "page_token"})
	}
	// Stale: a real cursor replayed with another order or other filters.
	for _, v := range []struct{ name, query string }{
		{"OtherOrder", "orderBy=" + q("create_time desc") + "&pageToken=" + q(fx.pageNames)},
		{"OtherKind", "kind=TOKEN_KIND_ADMIN&pageToken=" + q(fx.pageNames)},
		{"OtherType", "type=TOKEN_TYPE_CUSTOM&pageToken=" + q(fx.pageNames)},
		{"OtherExpiry", "expireBefore=" + q("2030-01-01T00:00:00Z") + "&pageToken=" + q(fx.pageNames)},
		{"CreatedOtherOrder", "pageToken=" + q(fx.pageCreated)},
	} {
		add(restCase{endpoint: "ListTokens", name: "Stale" + v.name, method: "GET", path: "/v1/tokens?" + v.query, want: 400, field: "page_token"})
	}
	add(restCase{endpoint: "ListAuditEvents", name: "StaleOtherTarget", method: "GET", path: "/v1/auditEvents?targetId=" + fx.apiID + "&pageToken=" + q(fx.pageAudit), want: 400, field: "page_token"})

	// Credentials.
	for _, h := range []struct {
		name   string
		header []string
	}{
		{"TwoBearers", []string{"Authorization", "Bearer " + fx.ts.root, "Authorization", "Bearer " + fx.ts.root}},
		{"TwoDifferentBearers", []string{"Authorization", "Bearer " + fx.apiSecret, "Authorization", "Bearer " + fx.ts.root}},
		{"CommaSeparated", []string{"Authorization", "Bearer " + fx.ts.root + ", Bearer " + fx.ts.root}},
		{"BearerTwice", []string{"Authorization", "Bearer Bearer " + fx.ts.root}},
		{"BearerOnly", []string{"Authorization", "Bearer"}},
		{"BearerSpace", []string{"Authorization", "Bearer "}},
		{"BearerSpaces", []string{"Authorization", "Bearer      "}},
		{"NoScheme", []string{"Authorization", fx.ts.root}},
		{"Basic", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("root:"+fx.ts.root))}},
		{"Empty", []string{"Authorization", ""}},
		{"APIToken", []string{"Authorization", "Bearer " + fx.apiSecret}},
		{"SecretWithSuffix", []string{"Authorization", "Bearer " + fx.ts.root + "x"}},
		{"SecretTwiceInOne", []string{"Authorization", "Bearer " + fx.ts.root + " " + fx.ts.root}},
		{"Long", []string{"Authorization", "Bearer " + strings.Repeat("t", 64<<10)}},
		{"NonASCII", []string{"Authorization", "Bearer tkda_é"}},
		{"MetadataHeader", []string{"Grpc-Metadata-Authorization", "Bearer " + fx.ts.root}},
	} {
		add(restCase{endpoint: "ListTokens", name: "Credential" + h.name, method: "GET", path: "/v1/tokens", secret: "-", header: h.header, want: 401})
		add(restCase{endpoint: "CreateToken", name: "Credential" + h.name, method: "POST", path: "/v1/tokens", body: `{"name":"should not exist"}`, secret: "-", header: h.header, want: 401})
		add(restCase{endpoint: "DeleteToken", name: "Credential" + h.name, method: "DELETE", path: "/v1/tokens/" + fx.apiID, secret: "-", header: h.header, want: 401})
	}
	// A case-insensitive scheme is RFC 9110: lower-case "bearer" works.
	add(restCase{endpoint: "ListTokens", name: "LowerCaseBearer", method: "GET", path: "/v1/tokens", secret: "-", header: []string{"Authorization", "bearer " + fx.ts.root}, check: func(t *testing.T, r *restResponse) {
		if r.status != http.StatusOK {
			t.Errorf("lower-case bearer: status %d, want 200: %s", r.status, r.body)
		}
	}})

	for _, c := range cases {
		t.Run(c.endpoint+"/"+c.name, func(t *testing.T) { fx.runREST(t, c) })
	}
	fx.healthy(t)
}

// restOversized sends bodies over the 1 MiB limit: announced ones are
// refused with 413 before the body is read; unannounced (chunked) ones with
// a 4xx once the limit is crossed, without reading the rest.
func (fx *hostileFixture) restOversized(t *testing.T) {
	const limit = server.DefaultMaxBodyBytes
	endpoints := []struct{ endpoint, method, path string }{
		{"CreateToken", "POST", "/v1/tokens"},
		{"UpdateToken", "PATCH", "/v1/tokens/" + fx.apiID},
		{"RegenerateToken", "POST", "/v1/tokens/" + fx.apiID + ":regenerate"},
		{"IntrospectToken", "POST", "/v1/tokens:introspect"},
		{"RegisterActions", "POST", "/v1/actions:register"},
	}
	for _, e := range endpoints {
		t.Run(e.endpoint+"/ContentLength", func(t *testing.T) {
			fx.count("REST " + e.endpoint)
			body := `{"name":"` + strings.Repeat("x", limit) + `"}`
			r := fx.ts.do(t, e.method, e.path, fx.ts.root, body)
			checkRefusal(t, "oversized", r, http.StatusRequestEntityTooLarge, "")
		})
		t.Run(e.endpoint+"/AnnouncedNotSent", func(t *testing.T) {
			// 1 GiB announced, a few bytes sent: the answer must come
			// without the server waiting for (or buffering) the rest.
			fx.count("REST " + e.endpoint)
			status := fx.rawRequest(t, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"name\":\"", e.method, e.path, fx.ts.root, 1<<30), nil)
			if status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", status)
			}
		})
		t.Run(e.endpoint+"/Chunked", func(t *testing.T) {
			// Chunks of a never-ending JSON string: the server must answer
			// after about the limit, not read all 64 MiB.
			fx.count("REST " + e.endpoint)
			status := fx.rawRequest(t, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", e.method, e.path, fx.ts.root), func(w io.Writer) (int64, error) {
				chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10)))
				if _, err := io.WriteString(w, "b\r\n{\"name\":\"xx\r\n"); err != nil {
					return 0, err
				}
				var sent int64
				for sent < 64<<20 {
					n, err := w.Write(chunk)
					sent += int64(n)
					if err != nil {
						return sent, err
					}
				}
				return sent, nil
			})
			if status < 400 || status > 499 {
				t.Errorf("status %d, want a 4xx", status)
			}
		})
	}
	fx.healthy(t)
}

// rawRequest writes head (and then, concurrently, whatever stream writes)
// on a raw connection and returns the status code of the answer. When
// stream is set, it also checks that the server answered before it had read
// the whole stream.
func (fx *hostileFixture) rawRequest(t *testing.T, head string, stream func(io.Writer) (int64, error)) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fx.ts.srv.HTTPAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	type result struct {
		sent int64
		err  error
	}
	done := make(chan result, 1)
	if stream != nil {
		go func() {
			n, err := stream(conn)
			done <- result{n, err}
		}()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if stream != nil {
		conn.Close() // ends the writer if the server keeps reading
		r := <-done
		if r.err == nil {
			t.Errorf("the server read the whole %d-byte stream before answering %d", r.sent, resp.StatusCode)
		}
		t.Logf("answer %d after the client had written %d bytes of the stream", resp.StatusCode, r.sent)
	}
	return resp.StatusCode
}

// restRawHeaders sends credential headers net/http's client refuses to
// build: control characters, NUL and obsolete line folding.
func (fx *hostileFixture) restRawHeaders(t *testing.T) {
	for _, h := range []struct {
		name, line string
		// folded: obsolete line folding, which RFC 9112 §5.2 lets a
		// server replace with a space: then the credential is valid.
		folded bool
	}{
		{"NULInToken", "Authorization: Bearer " + fx.ts.root + "\x00\r\n", false},
		{"ControlInToken", "Authorization: Bearer \x01" + fx.ts.root + "\r\n", false},
		{"InvalidUTF8Token", "Authorization: Bearer \xff\xfe\r\n", false},
		{"LineFolding", "Authorization: Bearer\r\n " + fx.ts.root + "\r\n", true},
		{"SpaceBeforeColon", "Authorization : Bearer " + fx.ts.root + "\r\n", false},
		{"TwoHeadersOneSecret", "Authorization: Bearer " + fx.ts.root + "\r\nAuthorization: Bearer\r\n", false},
		{"CRInValue", "Authorization: Bearer " + fx.ts.root + "\rX-Injected: 1\r\n", false},
	} {
		t.Run(h.name, func(t *testing.T) {
			fx.count("REST ListTokens")
			status := fx.rawRequest(t, "GET /v1/tokens HTTP/1.1\r\nHost: x\r\n"+h.line+"\r\n", nil)
			if (status < 400 || status > 499) && !(h.folded && status == http.StatusOK) {
				t.Errorf("status %d, want a 4xx", status)
			}
		})
	}
	fx.healthy(t)
}

// grpcCase is one hostile gRPC call.
type grpcCase struct {
	endpoint, name string
	call           func(ctx context.Context, c tokendv1.TokenServiceClient) error
	// want is the exact code, or OK for any refusal other than Internal
	// and Unknown.
	want  codes.Code
	field string
	// md replaces the root credential when set.
	md []string
}

func checkGRPCRefusal(t *testing.T, name string, err error, want codes.Code, field string) {
	t.Helper()
	st := status.Convert(err)
	switch {
	case err == nil:
		t.Errorf("%s: accepted", name)
		return
	case st.Code() == codes.Internal || st.Code() == codes.Unknown:
		t.Errorf("%s: %v", name, err)
		return
	case want != codes.OK && st.Code() != want:
		t.Errorf("%s: code %v (%s), want %v", name, st.Code(), st.Message(), want)
		return
	}
	if field == "" {
		return
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if !slices.Contains(fields, field) && !strings.Contains(st.Message(), field) {
		t.Errorf("%s: the error does not name %q (fields %q, message %q)", name, field, fields, st.Message())
	}
}

func (fx *hostileFixture) grpcSweep(t *testing.T) {
	var cases []grpcCase
	add := func(c grpcCase) { cases = append(cases, c) }
	custom := tokendv1.TokenType_TOKEN_TYPE_CUSTOM
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }

	for _, h := range hostileEscaped {
		s := h.s
		add(grpcCase{endpoint: "CreateToken", name: "Name" + h.name, want: codes.InvalidArgument, field: "token.name", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: s}})
			return err
		}})
		add(grpcCase{endpoint: "CreateToken", name: "Description" + h.name, want: codes.InvalidArgument, field: "token.description", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Description: s}})
			return err
		}})
		add(grpcCase{endpoint: "CreateToken", name: "Permission" + h.name, want: codes.InvalidArgument, field: "token.permissions[0]", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Type: custom, Permissions: []string{s}}})
			return err
		}})
		add(grpcCase{endpoint: "CreateToken", name: "AdminPermission" + h.name, want: codes.InvalidArgument, field: "token.permissions[1]", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: custom, Permissions: []string{"tokend.token.find", s}}})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "Name" + h.name, want: codes.InvalidArgument, field: "token.name", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Name: s}, UpdateMask: mask("name")})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "Description" + h.name, want: codes.InvalidArgument, field: "token.description", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Description: s}, UpdateMask: mask("description")})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "Permission" + h.name, want: codes.InvalidArgument, field: "token.permissions[0]", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Permissions: []string{s}}, UpdateMask: mask("permissions")})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "MaskPath" + h.name, want: codes.InvalidArgument, field: "update_mask", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Name: "x"}, UpdateMask: mask(s)})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "ID" + h.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID + s, Name: "x"}, UpdateMask: mask("name")})
			return err
		}})
		add(grpcCase{endpoint: "GetToken", name: "ID" + h.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.GetToken(ctx, &tokendv1.GetTokenRequest{Id: s})
			return err
		}})
		add(grpcCase{endpoint: "DeleteToken", name: "ID" + h.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: fx.apiID + s})
			return err
		}})
		add(grpcCase{endpoint: "RegenerateToken", name: "ID" + h.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: s + fx.apiID})
			return err
		}})
		add(grpcCase{endpoint: "IntrospectToken", name: "Action" + h.name, want: codes.InvalidArgument, field: "actions[0]", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: fx.apiSecret, Actions: []string{s}})
			return err
		}})
		add(grpcCase{endpoint: "RegisterActions", name: "ID" + h.name, want: codes.InvalidArgument, field: "actions[0].id", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: s}}})
			return err
		}})
		add(grpcCase{endpoint: "RegisterActions", name: "Description" + h.name, want: codes.InvalidArgument, field: "actions[0].description", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "api::x.y.find", Description: s}}})
			return err
		}})
		add(grpcCase{endpoint: "ListTokens", name: "PageToken" + h.name, want: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{PageToken: s})
			return err
		}})
		add(grpcCase{endpoint: "ListTokens", name: "OrderBy" + h.name, want: codes.InvalidArgument, field: "order_by", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{OrderBy: "name" + s})
			return err
		}})
		add(grpcCase{endpoint: "ListAuditEvents", name: "PageToken" + h.name, want: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageToken: fx.pageAudit + s})
			return err
		}})
	}
	// An introspected string that is not a secret is answered, not refused.
	introspectAnswers := 0
	for _, h := range hostileEscaped {
		resp, err := fx.ts.client.IntrospectToken(withSecret(fx.ts.root), &tokendv1.IntrospectTokenRequest{Token: fx.apiSecret + h.s})
		fx.count("gRPC IntrospectToken")
		introspectAnswers++
		if err != nil || resp.GetActive() || resp.GetInactiveReason() != tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED {
			t.Errorf("IntrospectToken(secret + %s) = %v, %v; want inactive MALFORMED", h.name, resp, err)
		}
		// A target that names no token filters everything out.
		ev, err := fx.ts.client.ListAuditEvents(withSecret(fx.ts.root), &tokendv1.ListAuditEventsRequest{TargetId: fx.apiID + h.s})
		fx.count("gRPC ListAuditEvents")
		if err != nil || len(ev.GetAuditEvents()) != 0 {
			t.Errorf("ListAuditEvents(target + %s) = %d events, %v; want none", h.name, len(ev.GetAuditEvents()), err)
		}
	}

	// Enums, sizes, durations, times.
	for _, v := range []struct {
		name, field string
		kind        tokendv1.TokenKind
		typ         tokendv1.TokenType
	}{
		{"KindUnknown", "token.kind", 3, 0}, {"KindNegative", "token.kind", -1, 0}, {"KindMax", "token.kind", 1<<31 - 1, 0},
		{"TypeUnknown", "token.type", 0, 4}, {"TypeNegative", "token.type", 0, -2147483648},
	} {
		add(grpcCase{endpoint: "CreateToken", name: v.name, want: codes.InvalidArgument, field: v.field, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Kind: v.kind, Type: v.typ}})
			return err
		}})
		if v.typ != 0 {
			add(grpcCase{endpoint: "UpdateToken", name: v.name, want: codes.InvalidArgument, field: v.field, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
				_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Type: v.typ}, UpdateMask: mask("type")})
				return err
			}})
		}
		lf := strings.TrimPrefix(v.field, "token.")
		add(grpcCase{endpoint: "ListTokens", name: v.name, want: codes.InvalidArgument, field: lf, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{Kind: v.kind, Type: v.typ})
			return err
		}})
		if v.kind != 0 {
			add(grpcCase{endpoint: "ListActions", name: v.name, want: codes.InvalidArgument, field: "kind", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
				_, err := c.ListActions(ctx, &tokendv1.ListActionsRequest{Kind: v.kind})
				return err
			}})
		}
	}
	for _, size := range []int32{-1, -2147483648, 1001, 2147483647} {
		add(grpcCase{endpoint: "ListTokens", name: fmt.Sprintf("PageSize%d", size), want: codes.InvalidArgument, field: "page_size", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: size})
			return err
		}})
		add(grpcCase{endpoint: "ListAuditEvents", name: fmt.Sprintf("PageSize%d", size), want: codes.InvalidArgument, field: "page_size", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: size})
			return err
		}})
	}
	for _, d := range []struct {
		name string
		d    *durationpb.Duration
	}{
		{"Negative", durationpb.New(-time.Second)}, {"OverADay", durationpb.New(24*time.Hour + time.Nanosecond)},
		{"Huge", &durationpb.Duration{Seconds: 1 << 62}}, {"MixedSigns", &durationpb.Duration{Seconds: 1, Nanos: -1}},
		{"BadNanos", &durationpb.Duration{Nanos: 2_000_000_000}}, {"MinInt", &durationpb.Duration{Seconds: -1 << 63}},
	} {
		add(grpcCase{endpoint: "RegenerateToken", name: "Grace" + d.name, want: codes.InvalidArgument, field: "grace_period", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: fx.apiID, GracePeriod: d.d})
			return err
		}})
		add(grpcCase{endpoint: "CreateToken", name: "Lifespan" + d.name, want: codes.InvalidArgument, field: "token.lifespan", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Lifespan: d.d}})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "Lifespan" + d.name, want: codes.InvalidArgument, field: "token.lifespan", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Lifespan: d.d}, UpdateMask: mask("lifespan")})
			return err
		}})
	}
	for _, tm := range []struct {
		name string
		t    *timestamppb.Timestamp
	}{
		{"Year10000", &timestamppb.Timestamp{Seconds: 253402300800}}, {"BadNanos", &timestamppb.Timestamp{Nanos: -1}},
		{"MinInt", &timestamppb.Timestamp{Seconds: -1 << 63}},
	} {
		add(grpcCase{endpoint: "ListTokens", name: "ExpireBefore" + tm.name, want: codes.InvalidArgument, field: "expire_before", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{ExpireBefore: tm.t})
			return err
		}})
	}

	// 10⁵ permissions, actions and mask paths.
	many := make([]string, 100_000)
	manyActions := make([]*tokendv1.Action, 100_000)
	for i := range many {
		many[i] = "api::article.article.find"
		manyActions[i] = &tokendv1.Action{Id: fmt.Sprintf("api::bulk.a%d.find", i)}
	}
	add(grpcCase{endpoint: "CreateToken", name: "HundredThousandPermissions", want: codes.InvalidArgument, field: "token.permissions", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Type: custom, Permissions: many}})
		return err
	}})
	add(grpcCase{endpoint: "UpdateToken", name: "HundredThousandPermissions", want: codes.InvalidArgument, field: "token.permissions", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Permissions: many}, UpdateMask: mask("permissions")})
		return err
	}})
	add(grpcCase{endpoint: "IntrospectToken", name: "HundredThousandActions", want: codes.InvalidArgument, field: "actions", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: fx.apiSecret, Actions: many})
		return err
	}})
	add(grpcCase{endpoint: "RegisterActions", name: "HundredThousandActions", want: codes.InvalidArgument, field: "actions", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: manyActions})
		return err
	}})

	// Messages over the server's 4 MiB limit.
	huge := strings.Repeat("x", 5<<20)
	for _, e := range []struct {
		endpoint string
		call     func(ctx context.Context, c tokendv1.TokenServiceClient) error
	}{
		{"CreateToken", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Description: huge}})
			return err
		}},
		{"UpdateToken", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Description: huge}, UpdateMask: mask("description")})
			return err
		}},
		{"GetToken", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.GetToken(ctx, &tokendv1.GetTokenRequest{Id: huge})
			return err
		}},
		{"DeleteToken", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: huge})
			return err
		}},
		{"RegenerateToken", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: huge})
			return err
		}},
		{"IntrospectToken", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: huge})
			return err
		}},
		{"RegisterActions", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "a.b", Description: huge}}})
			return err
		}},
		{"ListTokens", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{PageToken: huge})
			return err
		}},
		{"ListAuditEvents", func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{TargetId: huge})
			return err
		}},
	} {
		add(grpcCase{endpoint: e.endpoint, name: "Over4MiB", want: codes.ResourceExhausted, call: e.call})
	}

	// Ids: path characters, long ids, other tokens' ids in other forms.
	for _, id := range []struct{ name, id string }{
		{"DotDotSlash", "../../" + fx.apiID}, {"Slash", fx.apiID + "/"}, {"Encoded", "..%2F" + fx.apiID},
		{"Long", strings.Repeat("a", 1<<20)}, {"UpperCase", strings.ToUpper(fx.apiID)}, {"Space", " " + fx.apiID},
		{"Prefix", fx.apiID[:10]}, {"Star", "*"}, {"Secret", fx.apiSecret},
	} {
		add(grpcCase{endpoint: "GetToken", name: "ID" + id.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.GetToken(ctx, &tokendv1.GetTokenRequest{Id: id.id})
			return err
		}})
		add(grpcCase{endpoint: "DeleteToken", name: "ID" + id.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: id.id})
			return err
		}})
		add(grpcCase{endpoint: "RegenerateToken", name: "ID" + id.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: id.id})
			return err
		}})
		add(grpcCase{endpoint: "UpdateToken", name: "ID" + id.name, want: codes.NotFound, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: id.id, Name: "renamed"}, UpdateMask: mask("name")})
			return err
		}})
	}
	for _, rpc := range []string{"GetToken", "DeleteToken", "RegenerateToken", "UpdateToken"} {
		add(grpcCase{endpoint: rpc, name: "EmptyID", want: codes.InvalidArgument, call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			var err error
			switch rpc {
			case "GetToken":
				_, err = c.GetToken(ctx, &tokendv1.GetTokenRequest{})
			case "DeleteToken":
				_, err = c.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{})
			case "RegenerateToken":
				_, err = c.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{})
			case "UpdateToken":
				_, err = c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Name: "x"}, UpdateMask: mask("name")})
			}
			return err
		}})
	}
	add(grpcCase{endpoint: "CreateToken", name: "NoToken", want: codes.InvalidArgument, field: "token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{})
		return err
	}})
	add(grpcCase{endpoint: "UpdateToken", name: "NoToken", want: codes.InvalidArgument, field: "token.id", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{UpdateMask: mask("name")})
		return err
	}})

	// Forged and stale page tokens.
	b64 := base64.RawURLEncoding.EncodeToString
	tag := fx.pageNames[strings.LastIndexByte(fx.pageNames, '~'):]
	for _, f := range []struct{ name, pt string }{
		{"Random", b64([]byte("\x00\x01\x02random"))}, {"RandomWithTag", b64([]byte("zz")) + tag}, {"EmptyCursor", tag},
		{"AuditCursor", fx.pageAudit}, {"CreatedCursor", fx.pageCreated}, {"Truncated", fx.pageNames[:5]},
		{"Long", strings.Repeat("A", 1<<20) + tag}, {"Tildes", "~~~~"},
	} {
		add(grpcCase{endpoint: "ListTokens", name: "Forged" + f.name, want: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{PageToken: f.pt})
			return err
		}})
		pt := f.pt
		if f.name == "AuditCursor" {
			pt = fx.pageNames
		}
		add(grpcCase{endpoint: "ListAuditEvents", name: "Forged" + f.name, want: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageToken: pt})
			return err
		}})
	}
	for _, s := range []struct {
		name string
		req  *tokendv1.ListTokensRequest
	}{
		{"OtherOrder", &tokendv1.ListTokensRequest{PageToken: fx.pageNames, OrderBy: "create_time desc"}},
		{"OtherKind", &tokendv1.ListTokensRequest{PageToken: fx.pageNames, Kind: tokendv1.TokenKind_TOKEN_KIND_API}},
		{"OtherType", &tokendv1.ListTokensRequest{PageToken: fx.pageNames, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}},
		{"OtherExpiry", &tokendv1.ListTokensRequest{PageToken: fx.pageNames, ExpireBefore: timestamppb.Now()}},
	} {
		add(grpcCase{endpoint: "ListTokens", name: "Stale" + s.name, want: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
			_, err := c.ListTokens(ctx, s.req)
			return err
		}})
	}
	add(grpcCase{endpoint: "ListAuditEvents", name: "StaleOtherTarget", want: codes.InvalidArgument, field: "page_token", call: func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageToken: fx.pageAudit, TargetId: fx.adminID})
		return err
	}})

	// Credentials in metadata.
	list := func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.ListTokens(ctx, &tokendv1.ListTokensRequest{})
		return err
	}
	create := func(ctx context.Context, c tokendv1.TokenServiceClient) error {
		_, err := c.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "should not exist"}})
		return err
	}
	for _, m := range []struct {
		name string
		md   []string
	}{
		{"TwoBearers", []string{"authorization", "Bearer " + fx.ts.root, "authorization", "Bearer " + fx.ts.root}},
		{"TwoDifferentBearers", []string{"authorization", "Bearer " + fx.apiSecret, "authorization", "Bearer " + fx.ts.root}},
		{"CommaSeparated", []string{"authorization", "Bearer " + fx.ts.root + ", Bearer " + fx.ts.root}},
		{"BearerOnly", []string{"authorization", "Bearer"}},
		{"BearerSpace", []string{"authorization", "Bearer "}},
		{"NoScheme", []string{"authorization", fx.ts.root}},
		{"Empty", []string{"authorization", ""}},
		{"APIToken", []string{"authorization", "Bearer " + fx.apiSecret}},
		{"BinaryHeader", []string{"authorization-bin", "Bearer " + fx.ts.root}},
		{"Long", []string{"authorization", "Bearer " + strings.Repeat("t", 4<<10)}},
		{"None", []string{"x-nothing", "1"}},
	} {
		add(grpcCase{endpoint: "ListTokens", name: "Credential" + m.name, want: codes.Unauthenticated, md: m.md, call: list})
		add(grpcCase{endpoint: "CreateToken", name: "Credential" + m.name, want: codes.Unauthenticated, md: m.md, call: create})
	}

	for _, c := range cases {
		t.Run(c.endpoint+"/"+c.name, func(t *testing.T) {
			fx.count("gRPC " + c.endpoint)
			ctx := withSecret(fx.ts.root)
			if c.md != nil {
				ctx = metadata.AppendToOutgoingContext(context.Background(), c.md...)
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			checkGRPCRefusal(t, c.name, c.call(ctx, fx.ts.client), c.want, c.field)
		})
	}
	// Lower-case scheme works (RFC 9110).
	fx.count("gRPC ListTokens")
	if err := list(metadata.AppendToOutgoingContext(context.Background(), "authorization", "bearer "+fx.ts.root), fx.ts.client); err != nil {
		t.Errorf("lower-case bearer: %v", err)
	}
	fx.healthy(t)
}

// rawCodec sends and receives bytes as they are, so a test can put on the
// wire what a generated client refuses to marshal (invalid UTF-8 in a
// proto3 string).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// grpcInvalidUTF8 sends requests whose string fields hold invalid UTF-8.
// Such a message is not valid proto3, and the refusal must say so as a
// client error (InvalidArgument), not as the server's fault (Internal).
func (fx *hostileFixture) grpcInvalidUTF8(t *testing.T) {
	// Each message is marshalled with a 4-byte ASCII marker in one string
	// field, then the marker is swapped for 4 bytes of invalid UTF-8.
	const marker = "QQQQ"
	bad := []string{"\xff\xfe\xfd\xfc", "a\xc0\xafb", "\xed\xa0\x80a", "ab\xe2\x82"}
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }
	reqs := []struct {
		endpoint, field string
		msg             proto.Message
	}{
		{"CreateToken", "token.name", &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: marker}}},
		{"CreateToken", "token.description", &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Description: marker}}},
		{"CreateToken", "token.permissions", &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "ok", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{marker}}}},
		{"CreateToken", "token.id", &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Id: marker, Name: "ok"}}},
		{"GetToken", "id", &tokendv1.GetTokenRequest{Id: marker}},
		{"UpdateToken", "token.id", &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: marker, Name: "x"}, UpdateMask: mask("name")}},
		{"UpdateToken", "token.name", &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Name: marker}, UpdateMask: mask("name")}},
		{"UpdateToken", "update_mask", &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: fx.apiID, Name: "x"}, UpdateMask: mask(marker)}},
		{"DeleteToken", "id", &tokendv1.DeleteTokenRequest{Id: marker}},
		{"RegenerateToken", "id", &tokendv1.RegenerateTokenRequest{Id: marker}},
		{"IntrospectToken", "token", &tokendv1.IntrospectTokenRequest{Token: marker}},
		{"IntrospectToken", "actions", &tokendv1.IntrospectTokenRequest{Token: fx.apiSecret, Actions: []string{marker}}},
		{"RegisterActions", "actions.id", &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: marker}}}},
		{"RegisterActions", "actions.description", &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "a.b", Description: marker}}}},
		{"ListTokens", "page_token", &tokendv1.ListTokensRequest{PageToken: marker}},
		{"ListTokens", "order_by", &tokendv1.ListTokensRequest{OrderBy: marker}},
		{"ListAuditEvents", "page_token", &tokendv1.ListAuditEventsRequest{PageToken: marker}},
		{"ListAuditEvents", "target_id", &tokendv1.ListAuditEventsRequest{TargetId: marker}},
	}
	for _, r := range reqs {
		wire, err := proto.Marshal(r.msg)
		if err != nil || bytes.Count(wire, []byte(marker)) != 1 {
			t.Fatalf("%s: marshal with marker: %v", r.endpoint, err)
		}
		for i, b := range bad {
			t.Run(fmt.Sprintf("%s/%s/%d", r.endpoint, r.field, i), func(t *testing.T) {
				fx.count("gRPC " + r.endpoint)
				in := bytes.Replace(wire, []byte(marker), []byte(b), 1)
				if proto.Unmarshal(in, proto.Clone(r.msg)) == nil {
					t.Fatalf("the test's input is valid proto3")
				}
				var out []byte
				err := fx.ts.conn.Invoke(withSecret(fx.ts.root), "/tokend.v1.TokenService/"+r.endpoint, &in, &out, grpc.ForceCodec(rawCodec{}))
				checkGRPCRefusal(t, r.field, err, codes.InvalidArgument, "")
			})
		}
	}
	fx.healthy(t)
}
