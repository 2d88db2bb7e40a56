package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// These tests hold the size bounds on a real server, over both transports:
// the action catalog is capped, ListActions is paged like ListTokens, every
// list answer keeps to a byte budget, and an audit event records a bounded
// number of values.

// listBudget is the size budget of one list answer, in bytes of protobuf.
const listBudget = 1 << 20

func actionIDs(prefix string, n int) []*tokendv1.Action {
	out := make([]*tokendv1.Action, n)
	for i := range out {
		out[i] = &tokendv1.Action{Id: fmt.Sprintf("%s.v%04d", prefix, i)}
	}
	return out
}

func registerJSON(actions []*tokendv1.Action) string {
	var list []map[string]string
	for _, a := range actions {
		list = append(list, map[string]string{"id": a.GetId(), "description": a.GetDescription()})
	}
	b, _ := json.Marshal(map[string]any{"actions": list})
	return string(b)
}

func TestActionCatalogCapped(t *testing.T) {
	ts := startServer(t, server.Config{MaxActions: 100})
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: actionIDs("first.batch", 60)}); err != nil {
		t.Fatal(err)
	}
	// 60 + 50 new > 100: refused on both transports, nothing registered.
	second := actionIDs("second.batch", 50)
	_, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: second})
	checkRefused(t, "register past the cap", err, codes.FailedPrecondition, "catalog is full")
	checkRESTRefused(t, "register past the cap", ts.do(t, "POST", "/v1/actions:register", ts.root, registerJSON(second)),
		http.StatusConflict, codes.FailedPrecondition, "catalog is full")
	if n := len(listAllActions(t, ts, 0)); n != 60 {
		t.Fatalf("%d actions after the refusals, want 60", n)
	}
	// Registering known actions again adds nothing and stays allowed; up
	// to the cap exactly is allowed.
	again := append(actionIDs("first.batch", 60), actionIDs("second.batch", 40)...)
	mustOK(t, ts.do(t, "POST", "/v1/actions:register", ts.root, registerJSON(again)))
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: again}); err != nil {
		t.Errorf("re-registering within the cap: %v", err)
	}
	checkRESTRefused(t, "one past the cap", ts.do(t, "POST", "/v1/actions:register", ts.root, registerJSON(actionIDs("third.batch", 1))),
		http.StatusConflict, codes.FailedPrecondition, "catalog is full")
}

// listAllActions follows ListActions pages over gRPC and REST alike,
// checking that the two transports return the same pages.
func listAllActions(t *testing.T, ts *testServer, pageSize int32) []string {
	t.Helper()
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("ListActions never ends")
		}
		resp, err := ts.client.ListActions(withSecret(ts.root), &tokendv1.ListActionsRequest{PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatalf("ListActions: %v", err)
		}
		q := url.Values{"page_token": {token}}
		if pageSize != 0 {
			q.Set("page_size", fmt.Sprint(pageSize))
		}
		body := mustOK(t, ts.do(t, "GET", "/v1/actions?"+q.Encode(), ts.root, ""))
		restActions, _ := body["actions"].([]any)
		if len(restActions) != len(resp.GetActions()) || str(body, "nextPageToken") != resp.GetNextPageToken() {
			t.Fatalf("REST page has %d actions and next %q, gRPC %d and %q", len(restActions), str(body, "nextPageToken"), len(resp.GetActions()), resp.GetNextPageToken())
		}
		if size := proto.Size(resp); size > listBudget {
			t.Errorf("a page of %d bytes passes the budget of %d", size, listBudget)
		}
		for _, a := range resp.GetActions() {
			ids = append(ids, a.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			return ids
		}
	}
}

func TestListActionsPages(t *testing.T) {
	ts := startServer(t, server.Config{})
	want := make([]string, 0, 120)
	for _, a := range actionIDs("paged.subject", 120) {
		want = append(want, a.GetId())
	}
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: actionIDs("paged.subject", 120)}); err != nil {
		t.Fatal(err)
	}
	first, err := ts.client.ListActions(withSecret(ts.root), &tokendv1.ListActionsRequest{})
	if err != nil || len(first.GetActions()) != 50 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %d actions, next %q, %v; want the default 50 and a next page", len(first.GetActions()), first.GetNextPageToken(), err)
	}
	for _, size := range []int32{0, 7, 1000} {
		if got := listAllActions(t, ts, size); !slices.Equal(got, want) {
			t.Errorf("page size %d: listed %d actions, want the %d registered, in order", size, len(got), len(want))
		}
	}
	// The built-in admin catalog pages the same way.
	admin, err := ts.client.ListActions(withSecret(ts.root), &tokendv1.ListActionsRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, PageSize: 3})
	if err != nil || len(admin.GetActions()) != 3 || admin.GetNextPageToken() == "" {
		t.Fatalf("admin page: %v, %v", admin, err)
	}
	// A page token works only for the catalog it came from, and a bad
	// one or a bad size is a field error.
	bad := []struct {
		name, query string
		field       string
	}{
		{"TokenOfOtherKind", "page_token=" + url.QueryEscape(admin.GetNextPageToken()), "page_token"},
		{"GarbageToken", "page_token=nonsense", "page_token"},
		{"NegativeSize", "page_size=-1", "page_size"},
		{"HugeSize", "page_size=1001", "page_size"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			body := checkError(t, ts.do(t, "GET", "/v1/actions?"+c.query, ts.root, ""), http.StatusBadRequest, codes.InvalidArgument)
			if f := fieldViolations(t, body); !slices.Contains(f, c.field) {
				t.Errorf("violations %q, want %s", f, c.field)
			}
			q, _ := url.ParseQuery(c.query)
			req := &tokendv1.ListActionsRequest{PageToken: q.Get("page_token")}
			if s := q.Get("page_size"); s != "" {
				var n int32
				fmt.Sscan(s, &n)
				req.PageSize = n
			}
			if _, err := ts.client.ListActions(withSecret(ts.root), req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("gRPC: %v, want InvalidArgument", err)
			}
		})
	}
}

func TestListAnswersKeepToBudget(t *testing.T) {
	ts := startServer(t, server.Config{})
	// Actions as large as allowed: a 200-byte id and a 1,000-character
	// description of 3-byte characters. 400 of them pass the budget.
	big := make([]*tokendv1.Action, 400)
	for i := range big {
		id := fmt.Sprintf("big.v%04d.", i)
		big[i] = &tokendv1.Action{Id: id + strings.Repeat("x", 200-len(id)), Description: strings.Repeat("€", 1000)}
	}
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: big}); err != nil {
		t.Fatal(err)
	}
	page, err := ts.client.ListActions(withSecret(ts.root), &tokendv1.ListActionsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.GetActions()); n == 0 || n >= len(big) || page.GetNextPageToken() == "" {
		t.Fatalf("a page of ListActions holds %d of %d large actions with next %q: want it cut by the budget, with a next page", n, len(big), page.GetNextPageToken())
	}
	if got := listAllActions(t, ts, 1000); len(got) != len(big) {
		t.Errorf("following the pages lists %d actions, want %d", len(got), len(big))
	}

	// Tokens as large as allowed: 1,000 permissions of 200 bytes each.
	long := make([]*tokendv1.Action, 1000)
	perms := make([]string, len(long))
	for i := range long {
		id := fmt.Sprintf("perm.v%04d.", i)
		perms[i] = id + strings.Repeat("y", 200-len(id))
		long[i] = &tokendv1.Action{Id: perms[i]}
	}
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: long}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		ts.createToken(t, &tokendv1.Token{Name: fmt.Sprintf("Large %d", i), Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: perms})
	}
	var names []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("ListTokens never ends")
		}
		resp, err := ts.client.ListTokens(withSecret(ts.root), &tokendv1.ListTokensRequest{PageSize: 1000, PageToken: token, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM})
		if err != nil {
			t.Fatal(err)
		}
		if size := proto.Size(resp); size > listBudget {
			t.Errorf("a ListTokens page of %d bytes passes the budget", size)
		}
		q := url.Values{"page_size": {"1000"}, "type": {"TOKEN_TYPE_CUSTOM"}, "page_token": {token}}
		body := mustOK(t, ts.do(t, "GET", "/v1/tokens?"+q.Encode(), ts.root, ""))
		if rest, _ := body["tokens"].([]any); len(rest) != len(resp.GetTokens()) || str(body, "nextPageToken") != resp.GetNextPageToken() {
			t.Errorf("REST page has %d tokens, gRPC %d", len(rest), len(resp.GetTokens()))
		}
		if pages == 0 && (len(resp.GetTokens()) >= n || resp.GetNextPageToken() == "") {
			t.Errorf("the first page holds %d of %d large tokens with next %q: want it cut by the budget", len(resp.GetTokens()), n, resp.GetNextPageToken())
		}
		for _, tok := range resp.GetTokens() {
			names = append(names, tok.GetName())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(names) != n || len(slices.Compact(slices.Sorted(slices.Values(names)))) != n {
		t.Errorf("the pages list %q, want each of the %d large tokens once", names, n)
	}
}

func TestAuditValuesBounded(t *testing.T) {
	ts := startServer(t, server.Config{})
	actions := actionIDs("audited.subject", 1000)
	if _, err := ts.client.RegisterActions(withSecret(ts.root), &tokendv1.RegisterActionsRequest{Actions: actions}); err != nil {
		t.Fatal(err)
	}
	events, err := ts.client.ListAuditEvents(withSecret(ts.root), &tokendv1.ListAuditEventsRequest{PageSize: 1})
	if err != nil || len(events.GetAuditEvents()) != 1 {
		t.Fatalf("ListAuditEvents: %v, %v", events, err)
	}
	ev := events.GetAuditEvents()[0]
	fields := ev.GetChangedFields()
	if ev.GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_REGISTER_ACTIONS || len(fields) != 100 {
		t.Fatalf("the registration recorded %d values (%v), want 100", len(fields), ev.GetOperation())
	}
	if fields[0] != actions[0].GetId() || !strings.Contains(fields[99], "901 more") {
		t.Errorf("recorded values start %q and end %q: want the first ids, then a marker counting the 901 left out", fields[0], fields[99])
	}
	body := mustOK(t, ts.do(t, "GET", "/v1/auditEvents?page_size=1", ts.root, ""))
	list, _ := body["auditEvents"].([]any)
	if len(list) != 1 {
		t.Fatalf("REST audit page: %s", body)
	}
	rest, _ := list[0].(map[string]any)["changedFields"].([]any)
	if len(rest) != 100 || !strings.Contains(fmt.Sprint(rest[99]), "901 more") {
		t.Errorf("REST audit event records %d values, want 100 ending with the marker", len(rest))
	}
}
