package service_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

func TestCreateToken(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find", "x.create")
	h.clock.Advance(time.Hour)

	kinds := []struct {
		name   string
		kind   tokendv1.TokenKind
		prefix string
		perm   string // a permission a custom token of this kind may hold
	}{
		{"API", tokendv1.TokenKind_TOKEN_KIND_API, "tkd_", "x.create"},
		{"Admin", tokendv1.TokenKind_TOKEN_KIND_ADMIN, "tkda_", actTokenFind},
	}
	types := []struct {
		name string
		typ  tokendv1.TokenType
	}{
		{"ReadOnly", tokendv1.TokenType_TOKEN_TYPE_READ_ONLY},
		{"FullAccess", tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS},
		{"Custom", tokendv1.TokenType_TOKEN_TYPE_CUSTOM},
	}
	lifespans := []struct {
		name string
		d    time.Duration
	}{
		{"Unlimited", 0},
		{"7Days", 7 * day},
		{"30Days", 30 * day},
		{"90Days", 90 * day},
	}
	for _, k := range kinds {
		for _, ty := range types {
			for _, l := range lifespans {
				t.Run(k.name+"/"+ty.name+"/"+l.name, func(t *testing.T) {
					now := h.clock.Advance(time.Second)
					in := &tokendv1.Token{
						Name:        "  " + h.uniqueName(k.name+" "+ty.name+" "+l.name) + "  ",
						Description: "made by TestCreateToken",
						Kind:        k.kind,
						Type:        ty.typ,
						Lifespan:    lifespan(l.d),
						// Output-only fields are ignored.
						Id:           "chosen-by-caller",
						CreateTime:   timestamppb.New(t0),
						LastUsedTime: timestamppb.New(t0),
						SecretHint:   "tkd_…fake",
					}
					if ty.typ == tokendv1.TokenType_TOKEN_TYPE_CUSTOM {
						in.Permissions = []string{k.perm}
					}
					resp, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: in})
					if err != nil {
						t.Fatalf("CreateToken: %v", err)
					}
					secret := resp.GetSecret()
					h.remember(secret)
					if !strings.HasPrefix(secret, k.prefix) {
						t.Errorf("secret %s… does not start with %q", secret[:5], k.prefix)
					}
					got := resp.GetToken()
					if got.GetId() == "" || got.GetId() == in.Id {
						t.Errorf("id = %q, want a server-assigned one", got.GetId())
					}
					want := &tokendv1.Token{
						Id:          got.GetId(),
						Name:        strings.TrimSpace(in.Name),
						Description: in.Description,
						Kind:        k.kind,
						Type:        ty.typ,
						Permissions: in.Permissions,
						Lifespan:    lifespan(l.d),
						CreateTime:  timestamppb.New(now),
						UpdateTime:  timestamppb.New(now),
						SecretHint:  hintOf(secret),
					}
					if l.d != 0 {
						want.ExpireTime = timestamppb.New(now.Add(l.d))
					}
					if diff := protoDiff(want, got); diff != "" {
						t.Errorf("CreateToken token (-want +got):\n%s", diff)
					}
					if !strings.HasSuffix(got.GetSecretHint(), secret[len(secret)-4:]) || !strings.HasPrefix(got.GetSecretHint(), k.prefix+"…") {
						t.Errorf("secret_hint %q, want %s…<last 4>", got.GetSecretHint(), k.prefix)
					}

					// The secret is shown once: never by Get or List.
					g, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: got.GetId()})
					if err != nil {
						t.Fatalf("GetToken: %v", err)
					}
					if diff := protoDiff(want, g.GetToken()); diff != "" {
						t.Errorf("GetToken (-want +got):\n%s", diff)
					}
					wantNoSecret(t, g, secret)
					list, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: 1000})
					if err != nil {
						t.Fatalf("ListTokens: %v", err)
					}
					wantNoSecret(t, list, secret)

					if k.kind == tokendv1.TokenKind_TOKEN_KIND_API {
						h.wantActive(t, secret)
					} else {
						// The new admin secret works as a credential.
						if _, err := h.client.GetToken(h.as(secret), &tokendv1.GetTokenRequest{Id: got.GetId()}); codeOf(err) == codes.Unauthenticated {
							t.Errorf("the new admin secret is not accepted as a credential: %v", err)
						}
					}
				})
			}
		}
	}
}

func TestCreateTokenDefaults(t *testing.T) {
	h := newHarness(t)
	got, secret := h.create(t, &tokendv1.Token{Name: "defaults"})
	if got.GetKind() != tokendv1.TokenKind_TOKEN_KIND_API {
		t.Errorf("kind = %v, want TOKEN_KIND_API when unspecified", got.GetKind())
	}
	if got.GetType() != tokendv1.TokenType_TOKEN_TYPE_READ_ONLY {
		t.Errorf("type = %v, want TOKEN_TYPE_READ_ONLY when unspecified", got.GetType())
	}
	if got.GetLifespan() != nil || got.GetExpireTime() != nil {
		t.Errorf("lifespan %v, expire_time %v; want both unset (unlimited)", got.GetLifespan(), got.GetExpireTime())
	}
	if got.GetLastUsedTime() != nil {
		t.Errorf("last_used_time = %v, want unset for a new token", got.GetLastUsedTime())
	}
	if !strings.HasPrefix(secret, "tkd_") || strings.HasPrefix(secret, "tkda_") {
		t.Errorf("secret %q…: want the API prefix tkd_", secret[:5])
	}
}

func TestCreateTokenSecretsDiffer(t *testing.T) {
	h := newHarness(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		_, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
		if seen[secret] {
			t.Fatal("two tokens got the same secret")
		}
		seen[secret] = true
	}
}

// listFixture creates, one second apart, four tokens beside the three that
// Bootstrap made at t0:
//
//	alpha    API   read-only    7 days
//	Bravo    API   full access  30 days
//	charlie  API   custom       unlimited
//	Delta    admin read-only    90 days
func listFixture(t *testing.T) (*harness, map[string]*tokendv1.Token) {
	t.Helper()
	h := newHarness(t)
	h.register(t, "x.find")
	fixture := []*tokendv1.Token{
		{Name: "alpha", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY, Lifespan: lifespan(7 * day)},
		{Name: "Bravo", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Lifespan: lifespan(30 * day)},
		{Name: "charlie", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"x.find"}},
		{Name: "Delta", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY, Lifespan: lifespan(90 * day)},
	}
	byName := map[string]*tokendv1.Token{}
	for _, in := range fixture {
		h.clock.Advance(time.Second)
		tok, _ := h.create(t, in)
		byName[tok.GetName()] = tok
	}
	return h, byName
}

func TestListTokens(t *testing.T) {
	h, _ := listFixture(t)
	byName := []string{"alpha", "Bravo", "charlie", "Delta", "Full Access", "Read Only", "Root"}

	t.Run("DefaultOrderIsNameCaseInsensitive", func(t *testing.T) {
		resp, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := protoDiff(byName, names(resp.GetTokens())); diff != "" {
			t.Errorf("names (-want +got):\n%s", diff)
		}
		if resp.GetNextPageToken() != "" {
			t.Errorf("next_page_token %q on the only page", resp.GetNextPageToken())
		}
		for _, tok := range resp.GetTokens() {
			if tok.GetSecretHint() == "" || tok.GetId() == "" {
				t.Errorf("token %q: id %q, secret_hint %q; want both set", tok.GetName(), tok.GetId(), tok.GetSecretHint())
			}
		}
	})
	t.Run("OrderByName", func(t *testing.T) {
		for _, orderBy := range []string{"name", "name asc", " name "} {
			resp, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{OrderBy: orderBy})
			if err != nil {
				t.Fatalf("order_by %q: %v", orderBy, err)
			}
			if diff := protoDiff(byName, names(resp.GetTokens())); diff != "" {
				t.Errorf("order_by %q: names (-want +got):\n%s", orderBy, diff)
			}
		}
	})
	t.Run("OrderByCreateTimeDesc", func(t *testing.T) {
		resp, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{OrderBy: "create_time desc"})
		if err != nil {
			t.Fatal(err)
		}
		got := names(resp.GetTokens())
		if len(got) != 7 {
			t.Fatalf("got %q, want 7 tokens", got)
		}
		if diff := protoDiff([]string{"Delta", "charlie", "Bravo", "alpha"}, got[:4]); diff != "" {
			t.Errorf("newest first (-want +got):\n%s", diff)
		}
		// The bootstrap tokens share one create time: any order among them.
		if diff := protoDiff([]string{"Full Access", "Read Only", "Root"}, sorted(got[4:])); diff != "" {
			t.Errorf("oldest (-want +got):\n%s", diff)
		}
		for i := 1; i < len(resp.GetTokens()); i++ {
			if resp.GetTokens()[i].GetCreateTime().AsTime().After(resp.GetTokens()[i-1].GetCreateTime().AsTime()) {
				t.Errorf("token %d is newer than token %d", i, i-1)
			}
		}
	})
	for _, orderBy := range []string{"name", "create_time desc"} {
		t.Run("Pages/"+orderBy, func(t *testing.T) {
			all, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{OrderBy: orderBy})
			if err != nil {
				t.Fatal(err)
			}
			var paged []*tokendv1.Token
			var sizes []int
			req := &tokendv1.ListTokensRequest{PageSize: 2, OrderBy: orderBy}
			for {
				resp, err := h.client.ListTokens(h.asRoot(), req)
				if err != nil {
					t.Fatalf("page %d: %v", len(sizes)+1, err)
				}
				paged = append(paged, resp.GetTokens()...)
				sizes = append(sizes, len(resp.GetTokens()))
				if resp.GetNextPageToken() == "" {
					break
				}
				if len(sizes) > 10 {
					t.Fatal("more than 10 pages of 2 for 7 tokens")
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if diff := protoDiff([]int{2, 2, 2, 1}, sizes); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}
			if diff := protoDiff(all.GetTokens(), paged); diff != "" {
				t.Errorf("pages joined differ from one listing (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("ExactPageHasNoNextToken", func(t *testing.T) {
		resp, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetTokens()) != 7 || resp.GetNextPageToken() != "" {
			t.Errorf("page_size 7 over 7 tokens: %d tokens, next_page_token %q; want 7 and none", len(resp.GetTokens()), resp.GetNextPageToken())
		}
	})

	filters := []struct {
		name string
		req  *tokendv1.ListTokensRequest
		want []string
	}{
		{"KindAdmin", &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN}, []string{"Delta", "Root"}},
		{"KindAPI", &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_API}, []string{"alpha", "Bravo", "charlie", "Full Access", "Read Only"}},
		{"TypeReadOnly", &tokendv1.ListTokensRequest{Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}, []string{"alpha", "Delta", "Read Only"}},
		{"TypeCustom", &tokendv1.ListTokensRequest{Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM}, []string{"charlie"}},
		{"KindAPITypeFullAccess", &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_API, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, []string{"Bravo", "Full Access"}},
		{"KindAdminTypeFullAccess", &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, []string{"Root"}},
		{"ExpireBefore8Days", &tokendv1.ListTokensRequest{ExpireBefore: timestamppb.New(t0.Add(8 * day))}, []string{"alpha"}},
		{"ExpireBefore31Days", &tokendv1.ListTokensRequest{ExpireBefore: timestamppb.New(t0.Add(31 * day))}, []string{"alpha", "Bravo"}},
		{"ExpireBeforeIsStrict", &tokendv1.ListTokensRequest{ExpireBefore: timestamppb.New(t0.Add(time.Second + 7*day))}, nil},
		{"ExpireBeforeFarFuture", &tokendv1.ListTokensRequest{ExpireBefore: timestamppb.New(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))}, []string{"alpha", "Bravo", "Delta"}},
		{"ExpireBeforeAndKind", &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, ExpireBefore: timestamppb.New(t0.Add(365 * day))}, []string{"Delta"}},
		{"ExpireBeforeCreateTimeDesc", &tokendv1.ListTokensRequest{OrderBy: "create_time desc", ExpireBefore: timestamppb.New(t0.Add(365 * day))}, []string{"Delta", "Bravo", "alpha"}},
	}
	for _, f := range filters {
		t.Run("Filter/"+f.name, func(t *testing.T) {
			resp, err := h.client.ListTokens(h.asRoot(), f.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := protoDiff(f.want, names(resp.GetTokens()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			// The same filter one token a page gives the same tokens.
			var paged []string
			req := clone(f.req)
			req.PageSize = 1
			for i := 0; ; i++ {
				resp, err := h.client.ListTokens(h.asRoot(), req)
				if err != nil {
					t.Fatalf("page %d: %v", i+1, err)
				}
				paged = append(paged, names(resp.GetTokens())...)
				if resp.GetNextPageToken() == "" || i > 10 {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if diff := protoDiff(f.want, paged, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("paged one by one (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("PageTokenOfAnotherQuery", func(t *testing.T) {
		first, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		pt := first.GetNextPageToken()
		if pt == "" {
			t.Fatal("no next_page_token")
		}
		// The same query with another page size is fine.
		if _, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: 3, PageToken: pt}); err != nil {
			t.Errorf("same query, other page_size: %v", err)
		}
		others := []struct {
			name string
			req  *tokendv1.ListTokensRequest
		}{
			{"OtherKind", &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_API}},
			{"OtherType", &tokendv1.ListTokensRequest{Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}},
			{"OtherOrder", &tokendv1.ListTokensRequest{OrderBy: "create_time desc"}},
			{"OtherExpireBefore", &tokendv1.ListTokensRequest{ExpireBefore: timestamppb.New(t0.Add(day))}},
		}
		for _, o := range others {
			t.Run(o.name, func(t *testing.T) {
				o.req.PageSize = 2
				o.req.PageToken = pt
				_, err := h.client.ListTokens(h.asRoot(), o.req)
				wantInvalid(t, err, "page_token")
			})
		}
	})
	t.Run("ForgedPageToken", func(t *testing.T) {
		for _, pt := range []string{"garbage", "~", "x~00000000", strings.Repeat("A", 40)} {
			_, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageToken: pt})
			wantInvalid(t, err, "page_token")
		}
	})
	t.Run("PageSizeLimits", func(t *testing.T) {
		for _, ok := range []int32{1, 1000} {
			if _, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: ok}); err != nil {
				t.Errorf("page_size %d: %v", ok, err)
			}
		}
		for _, bad := range []int32{-1, 1001} {
			_, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageSize: bad})
			wantInvalid(t, err, "page_size")
		}
	})
	t.Run("BadOrderBy", func(t *testing.T) {
		for _, bad := range []string{"id", "name desc", "create_time", "create_time asc"} {
			_, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{OrderBy: bad})
			wantInvalid(t, err, "order_by")
		}
	})
	t.Run("BadEnums", func(t *testing.T) {
		_, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind(99)})
		wantInvalid(t, err, "kind")
		_, err = h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{Type: tokendv1.TokenType(-1)})
		wantInvalid(t, err, "type")
	})
	t.Run("BadExpireBefore", func(t *testing.T) {
		_, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{ExpireBefore: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}})
		wantInvalid(t, err, "expire_before")
	})
}

func TestListTokensDefaultPageSize(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 52; i++ { // 55 with the bootstrap tokens
		h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	}
	resp, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetTokens()) != 50 || resp.GetNextPageToken() == "" {
		t.Fatalf("page_size 0: %d tokens, next_page_token %q; want 50 and a next page", len(resp.GetTokens()), resp.GetNextPageToken())
	}
	rest, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{PageToken: resp.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.GetTokens()) != 5 || rest.GetNextPageToken() != "" {
		t.Fatalf("second page: %d tokens, next_page_token %q; want 5 and none", len(rest.GetTokens()), rest.GetNextPageToken())
	}
}

func TestGetToken(t *testing.T) {
	h := newHarness(t)
	created, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	resp, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := protoDiff(created, resp.GetToken()); diff != "" {
		t.Errorf("GetToken (-create +get):\n%s", diff)
	}
	wantNoSecret(t, resp, secret)
}

func TestUpdateToken(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find", "x.findOne", "x.findMany", "x.create")

	// fresh makes a custom API token with a 7-day lifespan at the current time.
	fresh := func(t *testing.T) (*tokendv1.Token, string) {
		t.Helper()
		return h.create(t, &tokendv1.Token{
			Name: h.uniqueName("update"), Description: "before",
			Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"x.find"},
			Lifespan: lifespan(7 * day),
		})
	}
	update := func(t *testing.T, tok *tokendv1.Token, paths ...string) *tokendv1.Token {
		t.Helper()
		resp, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: tok, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
		if err != nil {
			t.Fatalf("UpdateToken(%v): %v", paths, err)
		}
		if diff := protoDiff(resp.GetToken(), h.get(t, tok.GetId())); diff != "" {
			t.Errorf("GetToken after UpdateToken differs from its answer (-update +get):\n%s", diff)
		}
		return resp.GetToken()
	}

	cases := []struct {
		name  string
		in    func(id string) *tokendv1.Token
		paths []string
		// change applies the expected change to the token as created.
		change func(want *tokendv1.Token, now time.Time)
	}{
		{
			name: "Name",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Name: "  Renamed " + id + "  ", Description: "ignored"}
			},
			paths:  []string{"name"},
			change: func(w *tokendv1.Token, _ time.Time) { w.Name = "Renamed " + w.Id },
		},
		{
			name: "Description",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Description: "\tafter\n", Name: "ignored"}
			},
			paths:  []string{"description"},
			change: func(w *tokendv1.Token, _ time.Time) { w.Description = "after" },
		},
		{
			name:   "DescriptionCleared",
			in:     func(id string) *tokendv1.Token { return &tokendv1.Token{Id: id} },
			paths:  []string{"description"},
			change: func(w *tokendv1.Token, _ time.Time) { w.Description = "" },
		},
		{
			name: "CustomToReadOnlyDropsPermissions",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}
			},
			paths: []string{"type"},
			change: func(w *tokendv1.Token, _ time.Time) {
				w.Type, w.Permissions = tokendv1.TokenType_TOKEN_TYPE_READ_ONLY, nil
			},
		},
		{
			name: "CustomToFullAccessDropsPermissions",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}
			},
			paths: []string{"type"},
			change: func(w *tokendv1.Token, _ time.Time) {
				w.Type, w.Permissions = tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, nil
			},
		},
		{
			name: "Permissions",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Permissions: []string{"x.findMany", "x.create", "x.findMany"}}
			},
			paths:  []string{"permissions"},
			change: func(w *tokendv1.Token, _ time.Time) { w.Permissions = []string{"x.create", "x.findMany"} },
		},
		{
			name: "TypeAndPermissionsTogether",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Permissions: nil}
			},
			paths: []string{"type", "permissions"},
			change: func(w *tokendv1.Token, _ time.Time) {
				w.Type, w.Permissions = tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, nil
			},
		},
		{
			name:  "LifespanRestartsTheClock",
			in:    func(id string) *tokendv1.Token { return &tokendv1.Token{Id: id, Lifespan: lifespan(30 * day)} },
			paths: []string{"lifespan"},
			change: func(w *tokendv1.Token, now time.Time) {
				w.Lifespan, w.ExpireTime = lifespan(30*day), timestamppb.New(now.Add(30*day))
			},
		},
		{
			name:  "SameLifespanRestartsTheClock",
			in:    func(id string) *tokendv1.Token { return &tokendv1.Token{Id: id, Lifespan: lifespan(7 * day)} },
			paths: []string{"lifespan"},
			change: func(w *tokendv1.Token, now time.Time) {
				w.ExpireTime = timestamppb.New(now.Add(7 * day))
			},
		},
		{
			name:  "LifespanUnlimited",
			in:    func(id string) *tokendv1.Token { return &tokendv1.Token{Id: id} },
			paths: []string{"lifespan"},
			change: func(w *tokendv1.Token, _ time.Time) {
				w.Lifespan, w.ExpireTime = nil, nil
			},
		},
		{
			name: "Everything",
			in: func(id string) *tokendv1.Token {
				return &tokendv1.Token{Id: id, Name: "All " + id, Description: "all", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM,
					Permissions: []string{"x.findOne"}, Lifespan: lifespan(90 * day), Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN}
			},
			paths: []string{"name", "description", "type", "permissions", "lifespan"},
			change: func(w *tokendv1.Token, now time.Time) {
				w.Name, w.Description, w.Permissions = "All "+w.Id, "all", []string{"x.findOne"}
				w.Lifespan, w.ExpireTime = lifespan(90*day), timestamppb.New(now.Add(90*day))
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			created, secret := fresh(t)
			now := h.clock.Advance(3 * day)
			got := update(t, c.in(created.GetId()), c.paths...)
			want := clone(created)
			c.change(want, now)
			want.UpdateTime = timestamppb.New(now)
			if diff := protoDiff(want, got); diff != "" {
				t.Errorf("UpdateToken (-want +got):\n%s", diff)
			}
			wantNoSecret(t, got, secret)
			// The index follows: introspection shows the new version and
			// the secret still works.
			resp := h.wantActive(t, secret)
			if diff := protoDiff(got, resp.GetToken(), protocmp.IgnoreFields(&tokendv1.Token{}, "last_used_time")); diff != "" {
				t.Errorf("IntrospectToken token after update (-update +introspect):\n%s", diff)
			}
		})
	}

	t.Run("ReadOnlyToCustom", func(t *testing.T) {
		created, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
		got := update(t, &tokendv1.Token{Id: created.GetId(), Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"x.create"}}, "type", "permissions")
		if got.GetType() != tokendv1.TokenType_TOKEN_TYPE_CUSTOM || !equalStrings(got.GetPermissions(), []string{"x.create"}) {
			t.Errorf("got type %v permissions %q, want custom [x.create]", got.GetType(), got.GetPermissions())
		}
	})
	t.Run("RenameToOwnNameInOtherCase", func(t *testing.T) {
		created, _ := h.create(t, &tokendv1.Token{Name: "case change"})
		got := update(t, &tokendv1.Token{Id: created.GetId(), Name: "Case Change"}, "name")
		if got.GetName() != "Case Change" {
			t.Errorf("name = %q, want %q", got.GetName(), "Case Change")
		}
	})
	t.Run("LifespanRevivesAnExpiredToken", func(t *testing.T) {
		created, secret := fresh(t)
		h.clock.Advance(8 * day)
		h.wantInactive(t, secret, tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED)
		now := h.clock.Now()
		got := update(t, &tokendv1.Token{Id: created.GetId(), Lifespan: lifespan(7 * day)}, "lifespan")
		if !got.GetExpireTime().AsTime().Equal(now.Add(7 * day)) {
			t.Errorf("expire_time = %v, want now + 7 days = %v", got.GetExpireTime().AsTime(), now.Add(7*day))
		}
		h.wantActive(t, secret)
	})
	t.Run("ImmutableFieldInMask", func(t *testing.T) {
		created, _ := fresh(t)
		for _, path := range []string{"id", "kind", "expire_time", "create_time", "update_time", "last_used_time", "secret_hint", "secret", "bogus", "Name"} {
			t.Run(path, func(t *testing.T) {
				_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{
					Token:      &tokendv1.Token{Id: created.GetId(), Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Name: "changed"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name", path}},
				})
				wantInvalid(t, err, "update_mask", path)
				if diff := protoDiff(created, h.get(t, created.GetId())); diff != "" {
					t.Errorf("a refused update changed the token (-before +after):\n%s", diff)
				}
			})
		}
	})
	t.Run("EmptyMask", func(t *testing.T) {
		created, _ := fresh(t)
		for _, mask := range []*fieldmaskpb.FieldMask{nil, {}} {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: created.GetId(), Name: "x"}, UpdateMask: mask})
			wantInvalid(t, err, "update_mask")
		}
	})
}

func TestDeleteToken(t *testing.T) {
	h := newHarness(t)
	created, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	h.wantActive(t, secret)
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: created.GetId()}); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	h.wantInactive(t, secret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	_, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: created.GetId()})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: created.GetId()})
	wantCode(t, err, codes.NotFound)
	for _, tok := range h.listAll(t) {
		if tok.GetId() == created.GetId() {
			t.Error("ListTokens still lists the deleted token")
		}
	}
	// The name is free again.
	h.create(t, &tokendv1.Token{Name: created.GetName()})
}

func TestDeleteAdminTokenKillsCredential(t *testing.T) {
	h := newHarness(t)
	admin, secret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	if _, err := h.client.ListTokens(h.as(secret), &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatalf("the admin token does not work before delete: %v", err)
	}
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: admin.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.ListTokens(h.as(secret), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
}

func TestRegenerateToken(t *testing.T) {
	h := newHarness(t)
	created, oldSecret := h.create(t, &tokendv1.Token{Name: "regen", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Lifespan: lifespan(7 * day)})
	now := h.clock.Advance(2 * day)
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	newSecret := resp.GetSecret()
	h.remember(newSecret)
	if newSecret == oldSecret || !strings.HasPrefix(newSecret, "tkd_") {
		t.Fatalf("new secret %q…: want a different tkd_ secret", newSecret[:5])
	}
	want := clone(created)
	want.ExpireTime = timestamppb.New(now.Add(7 * day))
	want.UpdateTime = timestamppb.New(now)
	want.SecretHint = hintOf(newSecret)
	if diff := protoDiff(want, resp.GetToken()); diff != "" {
		t.Errorf("RegenerateToken token (-want +got):\n%s", diff)
	}
	if diff := protoDiff(want, h.get(t, created.GetId())); diff != "" {
		t.Errorf("GetToken after regenerate (-want +got):\n%s", diff)
	}
	wantNoSecret(t, h.get(t, created.GetId()), newSecret)
	h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	active := h.wantActive(t, newSecret)
	if active.GetToken().GetId() != created.GetId() {
		t.Errorf("the new secret belongs to %q, want %q", active.GetToken().GetId(), created.GetId())
	}
}

func TestRegenerateExpiredToken(t *testing.T) {
	h := newHarness(t)
	created, secret := h.create(t, &tokendv1.Token{Name: "expired", Lifespan: lifespan(7 * day)})
	h.clock.Advance(10 * day)
	h.wantInactive(t, secret, tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED)
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	h.remember(resp.GetSecret())
	regenerated := h.clock.Now()
	if got := resp.GetToken().GetExpireTime().AsTime(); !got.Equal(regenerated.Add(7 * day)) {
		t.Errorf("expire_time = %v, want a full lifespan from now, %v", got, regenerated.Add(7*day))
	}
	h.wantActive(t, resp.GetSecret())
	h.clock.Set(regenerated.Add(7*day - time.Nanosecond))
	h.wantActive(t, resp.GetSecret())
	h.clock.Set(regenerated.Add(7 * day))
	h.wantInactive(t, resp.GetSecret(), tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED)
}

func TestRegenerateUnlimitedStaysUnlimited(t *testing.T) {
	h := newHarness(t)
	created, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	h.clock.Advance(day)
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	h.remember(resp.GetSecret())
	if resp.GetToken().GetExpireTime() != nil {
		t.Errorf("expire_time = %v, want unset for an unlimited token", resp.GetToken().GetExpireTime())
	}
}

func TestRegenerateAdminToken(t *testing.T) {
	h := newHarness(t)
	admin, oldSecret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: admin.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	h.remember(resp.GetSecret())
	if !strings.HasPrefix(resp.GetSecret(), "tkda_") {
		t.Errorf("regenerated admin secret %q…, want prefix tkda_", resp.GetSecret()[:5])
	}
	_, err = h.client.ListTokens(h.as(oldSecret), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
	if _, err := h.client.ListTokens(h.as(resp.GetSecret()), &tokendv1.ListTokensRequest{}); err != nil {
		t.Errorf("the regenerated admin secret: %v", err)
	}
}

func TestBootstrap(t *testing.T) {
	h := newHarness(t)
	if !strings.HasPrefix(h.root, "tkda_") {
		t.Errorf("root secret %q…: want prefix tkda_", h.root[:5])
	}
	want := []*tokendv1.Token{
		{Name: "Full Access", Kind: tokendv1.TokenKind_TOKEN_KIND_API, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS},
		{Name: "Read Only", Kind: tokendv1.TokenKind_TOKEN_KIND_API, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY},
		{Name: "Root", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS,
			// The list call itself used the root token.
			LastUsedTime: timestamppb.New(t0)},
	}
	got := h.listAll(t)
	if diff := protoDiff(want, got, protocmp.IgnoreFields(&tokendv1.Token{}, "id", "description", "secret_hint", "create_time", "update_time")); diff != "" {
		t.Errorf("bootstrap tokens (-want +got):\n%s", diff)
	}
	for _, tok := range got {
		if tok.GetLifespan() != nil || tok.GetExpireTime() != nil {
			t.Errorf("%s: lifespan %v, expire_time %v; want unlimited", tok.GetName(), tok.GetLifespan(), tok.GetExpireTime())
		}
		if !tok.GetCreateTime().AsTime().Equal(t0) {
			t.Errorf("%s: create_time %v, want %v", tok.GetName(), tok.GetCreateTime().AsTime(), t0)
		}
		if tok.GetName() == "Root" && tok.GetSecretHint() != hintOf(h.root) {
			t.Errorf("Root secret_hint %q, want %q", tok.GetSecretHint(), hintOf(h.root))
		}
		wantNoSecret(t, tok, h.root)
	}

	t.Run("SecondCallDoesNothing", func(t *testing.T) {
		h.clock.Advance(time.Hour)
		again, err := h.svc.Bootstrap(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if again != "" {
			t.Error("second Bootstrap returned a secret")
		}
		if diff := protoDiff(got, h.listAll(t), protocmp.IgnoreFields(&tokendv1.Token{}, "last_used_time")); diff != "" {
			t.Errorf("second Bootstrap changed the tokens (-before +after):\n%s", diff)
		}
	})
	t.Run("DiscardedSecretsRegenerate", func(t *testing.T) {
		var full *tokendv1.Token
		for _, tok := range got {
			if tok.GetName() == "Full Access" {
				full = tok
			}
		}
		resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: full.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		h.remember(resp.GetSecret())
		if r := h.wantActive(t, resp.GetSecret()); r.GetToken().GetName() != "Full Access" {
			t.Errorf("regenerated secret belongs to %q", r.GetToken().GetName())
		}
	})
	t.Run("NotAgainAfterDeletingEverything", func(t *testing.T) {
		for _, tok := range h.listAll(t) {
			if tok.GetName() == "Root" {
				continue
			}
			if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: tok.GetId()}); err != nil {
				t.Fatal(err)
			}
		}
		var rootID string
		for _, tok := range h.listAll(t) {
			rootID = tok.GetId()
		}
		// The last unlimited full-access admin token cannot go, so the
		// store is as empty as it can get with Root alone.
		if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: rootID}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("root deleting itself: %v, want FailedPrecondition", err)
		}
		if n := h.svc.TokenCount(); n != 1 {
			t.Fatalf("%d tokens left, want Root alone", n)
		}
		again, err := h.svc.Bootstrap(h.ctx)
		if err != nil || again != "" || h.svc.TokenCount() != 1 {
			t.Errorf("Bootstrap after deleting everything else = %q…, %v, %d tokens; want nothing done", again[:min(len(again), 5)], err, h.svc.TokenCount())
		}
	})
	t.Run("NotAgainAfterRestart", func(t *testing.T) {
		h.restart(t)
		again, err := h.svc.Bootstrap(h.ctx)
		if err != nil || again != "" {
			t.Errorf("Bootstrap after restart = %q…, %v; want nothing", again[:min(len(again), 5)], err)
		}
	})
}

func TestRegisterAndListActions(t *testing.T) {
	h := newHarness(t)
	list := func(t *testing.T, kind tokendv1.TokenKind) []*tokendv1.Action {
		t.Helper()
		resp, err := h.client.ListActions(h.asRoot(), &tokendv1.ListActionsRequest{Kind: kind})
		if err != nil {
			t.Fatalf("ListActions: %v", err)
		}
		return resp.GetActions()
	}
	if got := list(t, tokendv1.TokenKind_TOKEN_KIND_API); len(got) != 0 {
		t.Errorf("a fresh API catalog lists %d actions", len(got))
	}

	req := &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find", Description: "  Find articles  "},
		{Id: "api::article.article.create", Description: "Create articles"},
		{Id: "plugin::upload.file-1.find_all"},
		// Output-only fields are ignored.
		{Id: "x.y", Subject: "bogus", Verb: "bogus"},
	}}
	resp, err := h.client.RegisterActions(h.asRoot(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := []*tokendv1.Action{
		{Id: "api::article.article.create", Description: "Create articles", Subject: "api::article.article", Verb: "create"},
		{Id: "api::article.article.find", Description: "Find articles", Subject: "api::article.article", Verb: "find"},
		{Id: "plugin::upload.file-1.find_all", Subject: "plugin::upload.file-1", Verb: "find_all"},
		{Id: "x.y", Subject: "x", Verb: "y"},
	}
	got := cloneAll(resp.GetActions())
	slices.SortFunc(got, func(a, b *tokendv1.Action) int { return strings.Compare(a.GetId(), b.GetId()) })
	if diff := protoDiff(want, got); diff != "" {
		t.Errorf("RegisterActions (-want +got):\n%s", diff)
	}
	if diff := protoDiff(want, list(t, tokendv1.TokenKind_TOKEN_KIND_API)); diff != "" {
		t.Errorf("ListActions, ordered by id (-want +got):\n%s", diff)
	}
	if diff := protoDiff(want, list(t, tokendv1.TokenKind_TOKEN_KIND_UNSPECIFIED)); diff != "" {
		t.Errorf("ListActions without kind lists the API catalog (-want +got):\n%s", diff)
	}

	t.Run("Idempotent", func(t *testing.T) {
		h.clock.Advance(time.Hour)
		if _, err := h.client.RegisterActions(h.asRoot(), req); err != nil {
			t.Fatal(err)
		}
		if diff := protoDiff(want, list(t, tokendv1.TokenKind_TOKEN_KIND_API)); diff != "" {
			t.Errorf("ListActions after registering again (-want +got):\n%s", diff)
		}
	})
	t.Run("DescriptionUpdate", func(t *testing.T) {
		if _, err := h.client.RegisterActions(h.asRoot(), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
			{Id: "api::article.article.find", Description: "Find and read articles"},
		}}); err != nil {
			t.Fatal(err)
		}
		want := cloneAll(want)
		want[1].Description = "Find and read articles"
		if diff := protoDiff(want, list(t, tokendv1.TokenKind_TOKEN_KIND_API)); diff != "" {
			t.Errorf("ListActions after a new description (-want +got):\n%s", diff)
		}
	})
	t.Run("AdminCatalog", func(t *testing.T) {
		got := list(t, tokendv1.TokenKind_TOKEN_KIND_ADMIN)
		var ids []string
		for _, a := range got {
			ids = append(ids, a.GetId())
			subject, verb, _ := cutLast(a.GetId())
			if a.GetSubject() != subject || a.GetVerb() != verb || a.GetDescription() == "" {
				t.Errorf("admin action %+v: want subject %q, verb %q and a description", a, subject, verb)
			}
			if !strings.HasPrefix(a.GetId(), "tokend.") {
				t.Errorf("admin action %q outside the reserved tokend. subject", a.GetId())
			}
		}
		// The built-in admin actions, in id order; later features may add
		// more under tokend.
		for _, a := range adminActions {
			if !slices.Contains(ids, a) {
				t.Errorf("the admin catalog lacks %s", a)
			}
		}
		if !slices.IsSorted(ids) {
			t.Errorf("admin catalog not ordered by id: %q", ids)
		}
	})
	t.Run("BadKind", func(t *testing.T) {
		_, err := h.client.ListActions(h.asRoot(), &tokendv1.ListActionsRequest{Kind: tokendv1.TokenKind(99)})
		wantInvalid(t, err, "kind")
	})
}

// cutLast splits an action id into subject and verb at its last dot.
func cutLast(id string) (subject, verb string, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return "", id, false
	}
	return id[:i], id[i+1:], true
}

func equalStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestConcurrentCreatesOfOneName: names stay unique under concurrent
// creates, whatever their case.
func TestConcurrentCreatesOfOneName(t *testing.T) {
	h := newHarness(t)
	const n = 8
	codesSeen := make(chan codes.Code, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := "Contested"
			if i%2 == 1 {
				name = "CONTESTED"
			}
			resp, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: name}})
			if err == nil {
				h.remember(resp.GetSecret())
			}
			codesSeen <- codeOf(err)
		}(i)
	}
	wg.Wait()
	close(codesSeen)
	count := map[codes.Code]int{}
	for c := range codesSeen {
		count[c]++
	}
	if count[codes.OK] != 1 || count[codes.AlreadyExists] != n-1 {
		t.Errorf("codes %v, want one OK and %d AlreadyExists", count, n-1)
	}
}

// TestRestartKeepsTokens: tokens and secrets survive a restart with the
// same key; with another key no secret works any more.
func TestRestartKeepsTokens(t *testing.T) {
	h := newHarness(t)
	created, secret := h.create(t, &tokendv1.Token{Name: "survivor", Lifespan: lifespan(7 * day)})
	h.restart(t)
	if diff := protoDiff(created, h.get(t, created.GetId())); diff != "" {
		t.Errorf("token after restart (-before +after):\n%s", diff)
	}
	h.wantActive(t, secret)

	h.key = make([]byte, 32) // all zeros: another key
	h.restart(t)
	_, err := h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
}
