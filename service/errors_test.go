package service_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage"
)

// The lifespan error names every preset and "unlimited".
var allowedLifespans = []string{`"604800s"`, `"2592000s"`, `"7776000s"`, "unlimited"}

func TestCreateTokenFieldLimits(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find", "x.create", "api::article.article.find")
	custom := tokendv1.TokenType_TOKEN_TYPE_CUSTOM
	admin := tokendv1.TokenKind_TOKEN_KIND_ADMIN
	action200 := "a." + strings.Repeat("b", 198)
	h.register(t, action200)

	refused := []struct {
		name    string
		tok     *tokendv1.Token
		field   string
		mention []string
	}{
		{"NoToken", nil, "token", nil},
		{"NameEmpty", &tokendv1.Token{Name: ""}, "token.name", nil},
		{"NameWhitespaceOnly", &tokendv1.Token{Name: " \t\n "}, "token.name", nil},
		{"Name101Runes", &tokendv1.Token{Name: strings.Repeat("é", 101)}, "token.name", []string{"100"}},
		{"Name101RunesCJK", &tokendv1.Token{Name: strings.Repeat("日", 101)}, "token.name", []string{"100"}},
		{"Name101Runes4Byte", &tokendv1.Token{Name: strings.Repeat("😀", 101)}, "token.name", []string{"100"}},
		{"NameControlChar", &tokendv1.Token{Name: "bad\x01name"}, "token.name", []string{"control"}},
		{"NameNewline", &tokendv1.Token{Name: "two\nlines"}, "token.name", []string{"control"}},
		{"NameTab", &tokendv1.Token{Name: "tab\tbed"}, "token.name", []string{"control"}},
		{"NameDEL", &tokendv1.Token{Name: "del\x7f"}, "token.name", []string{"control"}},
		{"NameC1Control", &tokendv1.Token{Name: "c1\u0085x"}, "token.name", []string{"control"}},
		{"Description1001", &tokendv1.Token{Name: "d", Description: strings.Repeat("é", 1001)}, "token.description", []string{"1000"}},
		{"DescriptionControlChar", &tokendv1.Token{Name: "d", Description: "bell\x07"}, "token.description", []string{"control"}},
		{"Lifespan8Days", &tokendv1.Token{Name: "l", Lifespan: durationpb.New(8 * day)}, "token.lifespan", allowedLifespans},
		{"LifespanNegative7Days", &tokendv1.Token{Name: "l", Lifespan: durationpb.New(-7 * day)}, "token.lifespan", allowedLifespans},
		{"LifespanZero", &tokendv1.Token{Name: "l", Lifespan: durationpb.New(0)}, "token.lifespan", allowedLifespans},
		{"Lifespan7DaysPlus1ns", &tokendv1.Token{Name: "l", Lifespan: durationpb.New(7*day + 1)}, "token.lifespan", allowedLifespans},
		{"LifespanInvalidProto", &tokendv1.Token{Name: "l", Lifespan: &durationpb.Duration{Seconds: 604800, Nanos: -1}}, "token.lifespan", allowedLifespans},
		{"KindOutOfRange", &tokendv1.Token{Name: "k", Kind: tokendv1.TokenKind(99)}, "token.kind", nil},
		{"KindNegative", &tokendv1.Token{Name: "k", Kind: tokendv1.TokenKind(-1)}, "token.kind", nil},
		{"TypeOutOfRange", &tokendv1.Token{Name: "t", Type: tokendv1.TokenType(99)}, "token.type", nil},
		{"TypeOutOfRangeWithPermissions", &tokendv1.Token{Name: "t", Type: tokendv1.TokenType(4), Permissions: []string{"x.find"}}, "token.type", nil},
		{"PermissionsOnReadOnly", &tokendv1.Token{Name: "p", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY, Permissions: []string{"x.find"}}, "token.permissions", []string{"custom"}},
		{"PermissionsOnFullAccess", &tokendv1.Token{Name: "p", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Permissions: []string{"x.find"}}, "token.permissions", []string{"custom"}},
		{"PermissionsOnUnspecifiedType", &tokendv1.Token{Name: "p", Permissions: []string{"x.find"}}, "token.permissions", []string{"custom"}},
		{"PermissionsOnAdminReadOnly", &tokendv1.Token{Name: "p", Kind: admin, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY, Permissions: []string{actTokenFind}}, "token.permissions", []string{"custom"}},
		{"CustomWithNone", &tokendv1.Token{Name: "p", Type: custom}, "token.permissions", []string{"at least one"}},
		{"AdminCustomWithNone", &tokendv1.Token{Name: "p", Kind: admin, Type: custom}, "token.permissions", []string{"at least one"}},
		{"CustomUnregistered", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{"x.find", "x.delete", "y.find"}}, "token.permissions", []string{"x.delete", "y.find"}},
		{"CustomAdminActionOnAPIToken", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{actTokenFind}}, "token.permissions", []string{actTokenFind}},
		{"AdminCustomUnknown", &tokendv1.Token{Name: "p", Kind: admin, Type: custom, Permissions: []string{"tokend.token.nuke"}}, "token.permissions", []string{"tokend.token.nuke"}},
		{"AdminCustomAPIAction", &tokendv1.Token{Name: "p", Kind: admin, Type: custom, Permissions: []string{"x.find"}}, "token.permissions", []string{"x.find"}},
		{"MalformedNoDot", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{"find"}}, "token.permissions[0]", nil},
		{"MalformedEmptySegment", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{"x.find", "a..find"}}, "token.permissions[1]", nil},
		{"MalformedLeadingDot", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{".find"}}, "token.permissions[0]", nil},
		{"MalformedTrailingDot", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{"x.find."}}, "token.permissions[0]", nil},
		{"MalformedSpace", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{"x .find"}}, "token.permissions[0]", nil},
		{"MalformedSlash", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{"x/y.find"}}, "token.permissions[0]", nil},
		{"MalformedEmpty", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{""}}, "token.permissions[0]", nil},
		{"Malformed201Chars", &tokendv1.Token{Name: "p", Type: custom, Permissions: []string{action200 + "c"}}, "token.permissions[0]", []string{"200"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			before := h.listAll(t)
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: c.tok})
			wantInvalid(t, err, c.field, c.mention...)
			if diff := protoDiff(before, h.listAll(t)); diff != "" {
				t.Errorf("a refused create changed the tokens (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("EveryBadFieldNamed", func(t *testing.T) {
		_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
			Name: "", Description: strings.Repeat("x", 1001), Kind: tokendv1.TokenKind(7), Type: tokendv1.TokenType(7), Lifespan: durationpb.New(time.Hour),
		}})
		for _, field := range []string{"token.name", "token.description", "token.kind", "token.type", "token.lifespan"} {
			wantInvalid(t, err, field)
		}
	})

	accepted := []struct {
		name string
		tok  *tokendv1.Token
		// check inspects the created token.
		check func(t *testing.T, got *tokendv1.Token)
	}{
		{"Name100Runes", &tokendv1.Token{Name: strings.Repeat("é", 100)}, wantName(strings.Repeat("é", 100))},
		{"Name100RunesCJK", &tokendv1.Token{Name: strings.Repeat("日", 100)}, wantName(strings.Repeat("日", 100))},
		{"Name100Runes4Byte", &tokendv1.Token{Name: strings.Repeat("😀", 100)}, wantName(strings.Repeat("😀", 100))},
		{"Name100RunesPlusSpaces", &tokendv1.Token{Name: "  " + strings.Repeat("ü", 100) + "\t\n"}, wantName(strings.Repeat("ü", 100))},
		{"NameTrimmed", &tokendv1.Token{Name: "  padded name \t"}, wantName("padded name")},
		{"NameOneChar", &tokendv1.Token{Name: "x"}, wantName("x")},
		{"DescriptionEmpty", &tokendv1.Token{Name: "desc empty"}, wantDescription("")},
		{"Description1000", &tokendv1.Token{Name: "desc 1000", Description: strings.Repeat("é", 1000)}, wantDescription(strings.Repeat("é", 1000))},
		{"Description1000Trimmed", &tokendv1.Token{Name: "desc trimmed", Description: "\n  " + strings.Repeat("a", 1000) + "  \t"}, wantDescription(strings.Repeat("a", 1000))},
		{"DescriptionLineBreaksAndTabs", &tokendv1.Token{Name: "desc lines", Description: "one\ntwo\r\n\tthree"}, wantDescription("one\ntwo\r\n\tthree")},
		{"PermissionsDeduplicated", &tokendv1.Token{Name: "dedup", Type: custom, Permissions: []string{"x.find", "x.create", "x.find", "x.create", "x.find"}}, wantPermissions("x.create", "x.find")},
		{"PermissionStrapiStyle", &tokendv1.Token{Name: "strapi", Type: custom, Permissions: []string{"api::article.article.find"}}, wantPermissions("api::article.article.find")},
		{"Permission200Chars", &tokendv1.Token{Name: "long action", Type: custom, Permissions: []string{action200}}, wantPermissions(action200)},
		{"AdminCustomDeduplicated", &tokendv1.Token{Name: "admin dedup", Kind: admin, Type: custom, Permissions: []string{actTokenFind, actTokenFind}}, wantPermissions(actTokenFind)},
		{"EmptyPermissionsOnReadOnly", &tokendv1.Token{Name: "ro empty", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY, Permissions: []string{}}, wantPermissions()},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			got, _ := h.create(t, c.tok)
			c.check(t, got)
			c.check(t, h.get(t, got.GetId()))
		})
	}
}

func wantName(name string) func(*testing.T, *tokendv1.Token) {
	return func(t *testing.T, got *tokendv1.Token) {
		t.Helper()
		if got.GetName() != name {
			t.Errorf("name = %q, want %q", got.GetName(), name)
		}
	}
}

func wantDescription(d string) func(*testing.T, *tokendv1.Token) {
	return func(t *testing.T, got *tokendv1.Token) {
		t.Helper()
		if got.GetDescription() != d {
			t.Errorf("description = %q, want %q", got.GetDescription(), d)
		}
	}
}

func wantPermissions(perms ...string) func(*testing.T, *tokendv1.Token) {
	return func(t *testing.T, got *tokendv1.Token) {
		t.Helper()
		if !equalStrings(sorted(got.GetPermissions()), perms) || len(got.GetPermissions()) != len(perms) {
			t.Errorf("permissions = %q, want %q", got.GetPermissions(), perms)
		}
	}
}

func TestCustomLifespans(t *testing.T) {
	h := newHarness(t, func(c *service.Config) { c.Lifespans = []time.Duration{time.Hour, 24 * time.Hour, time.Hour} })
	got, _ := h.create(t, &tokendv1.Token{Name: "hour", Lifespan: durationpb.New(time.Hour)})
	if !got.GetExpireTime().AsTime().Equal(t0.Add(time.Hour)) {
		t.Errorf("expire_time = %v, want %v", got.GetExpireTime().AsTime(), t0.Add(time.Hour))
	}
	_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "week", Lifespan: durationpb.New(7 * day)}})
	wantInvalid(t, err, "token.lifespan", `"3600s"`, `"86400s"`, "unlimited")
	if got := h.svc.Lifespans(); !equalStrings(durations(got), durations([]time.Duration{time.Hour, 24 * time.Hour})) {
		t.Errorf("Lifespans() = %v, want [1h 24h]", got)
	}
}

func durations(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func TestUpdateTokenFieldLimits(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find", "x.create")
	custom, _ := h.create(t, &tokendv1.Token{Name: "custom", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"x.find"}, Lifespan: durationpb.New(7 * day)})
	readOnly, _ := h.create(t, &tokendv1.Token{Name: "plain reader"})
	adminCustom, _ := h.create(t, &tokendv1.Token{Name: "admin custom", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{actTokenFind}})

	refused := []struct {
		name    string
		id      string
		in      *tokendv1.Token
		paths   []string
		field   string
		mention []string
	}{
		{"NameEmpty", custom.GetId(), &tokendv1.Token{}, []string{"name"}, "token.name", nil},
		{"NameWhitespace", custom.GetId(), &tokendv1.Token{Name: "   "}, []string{"name"}, "token.name", nil},
		{"Name101Runes", custom.GetId(), &tokendv1.Token{Name: strings.Repeat("ß", 101)}, []string{"name"}, "token.name", []string{"100"}},
		{"NameControlChar", custom.GetId(), &tokendv1.Token{Name: "a\x00b"}, []string{"name"}, "token.name", []string{"control"}},
		{"Description1001", custom.GetId(), &tokendv1.Token{Description: strings.Repeat("é", 1001)}, []string{"description"}, "token.description", []string{"1000"}},
		{"TypeOutOfRange", custom.GetId(), &tokendv1.Token{Type: tokendv1.TokenType(99)}, []string{"type"}, "token.type", nil},
		{"Lifespan8Days", custom.GetId(), &tokendv1.Token{Lifespan: durationpb.New(8 * day)}, []string{"lifespan"}, "token.lifespan", allowedLifespans},
		{"LifespanNegative", custom.GetId(), &tokendv1.Token{Lifespan: durationpb.New(-30 * day)}, []string{"lifespan"}, "token.lifespan", allowedLifespans},
		{"PermissionsOnReadOnly", readOnly.GetId(), &tokendv1.Token{Permissions: []string{"x.find"}}, []string{"permissions"}, "token.permissions", []string{"custom"}},
		{"PermissionsWithTypeFullAccess", custom.GetId(), &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Permissions: []string{"x.find"}}, []string{"type", "permissions"}, "token.permissions", []string{"custom"}},
		{"CustomEmptied", custom.GetId(), &tokendv1.Token{}, []string{"permissions"}, "token.permissions", []string{"at least one"}},
		{"ToCustomWithoutPermissions", readOnly.GetId(), &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM}, []string{"type"}, "token.permissions", []string{"at least one"}},
		{"ToCustomWithEmptyPermissions", readOnly.GetId(), &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM}, []string{"type", "permissions"}, "token.permissions", []string{"at least one"}},
		{"Unregistered", custom.GetId(), &tokendv1.Token{Permissions: []string{"x.find", "x.remove"}}, []string{"permissions"}, "token.permissions", []string{"x.remove"}},
		{"Malformed", custom.GetId(), &tokendv1.Token{Permissions: []string{"x.find", "x"}}, []string{"permissions"}, "token.permissions[1]", nil},
		{"AdminUnknown", adminCustom.GetId(), &tokendv1.Token{Permissions: []string{"x.find"}}, []string{"permissions"}, "token.permissions", []string{"x.find"}},
		{"NoID", "", &tokendv1.Token{Name: "n"}, []string{"name"}, "token.id", nil},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			before := h.listAll(t)
			in := clone(c.in)
			in.Id = c.id
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: in, UpdateMask: &fieldmaskpb.FieldMask{Paths: c.paths}})
			wantInvalid(t, err, c.field, c.mention...)
			if diff := protoDiff(before, h.listAll(t)); diff != "" {
				t.Errorf("a refused update changed the tokens (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("NilToken", func(t *testing.T) {
		_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
		wantInvalid(t, err, "token.id")
	})
}

func TestRegisterActionsFieldLimits(t *testing.T) {
	h := newHarness(t)
	action200 := "a." + strings.Repeat("b", 198)
	refused := []struct {
		name    string
		actions []*tokendv1.Action
		field   string
		mention []string
	}{
		{"None", nil, "actions", nil},
		{"ReservedPrefix", []*tokendv1.Action{{Id: "tokend.token.find"}}, "actions[0].id", []string{"tokend."}},
		{"ReservedPrefixNewAction", []*tokendv1.Action{{Id: "x.find"}, {Id: "tokend.other.find"}}, "actions[1].id", []string{"reserved"}},
		{"ReservedPrefixBare", []*tokendv1.Action{{Id: "tokend.x"}}, "actions[0].id", []string{"reserved"}},
		{"Id201Chars", []*tokendv1.Action{{Id: action200 + "b"}}, "actions[0].id", []string{"200"}},
		{"IdEmpty", []*tokendv1.Action{{Id: ""}}, "actions[0].id", nil},
		{"IdNoVerb", []*tokendv1.Action{{Id: "article"}}, "actions[0].id", nil},
		{"IdEmptySegment", []*tokendv1.Action{{Id: "a..find"}}, "actions[0].id", nil},
		{"IdTrailingDot", []*tokendv1.Action{{Id: "a.find."}}, "actions[0].id", nil},
		{"IdBadCharacter", []*tokendv1.Action{{Id: "a.find*"}}, "actions[0].id", nil},
		{"IdSpace", []*tokendv1.Action{{Id: " a.find"}}, "actions[0].id", nil},
		{"DuplicateInRequest", []*tokendv1.Action{{Id: "a.find"}, {Id: "a.find"}}, "actions[1].id", nil},
		{"Description1001", []*tokendv1.Action{{Id: "a.find", Description: strings.Repeat("é", 1001)}}, "actions[0].description", []string{"1000"}},
		{"DescriptionControlChar", []*tokendv1.Action{{Id: "a.find", Description: "\x1b[31m"}}, "actions[0].description", nil},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.client.RegisterActions(h.asRoot(), &tokendv1.RegisterActionsRequest{Actions: c.actions})
			wantInvalid(t, err, c.field, c.mention...)
			resp, err := h.client.ListActions(h.asRoot(), &tokendv1.ListActionsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetActions()); n != 0 {
				t.Errorf("a refused RegisterActions stored %d actions", n)
			}
		})
	}
	t.Run("Id200Chars", func(t *testing.T) {
		resp, err := h.client.RegisterActions(h.asRoot(), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: action200, Description: strings.Repeat("é", 1000)}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetActions()[0]; got.GetId() != action200 || got.GetVerb() != strings.Repeat("b", 198) || got.GetSubject() != "a" {
			t.Errorf("registered %+v", got)
		}
	})
	t.Run("NotReservedLookalikes", func(t *testing.T) {
		if _, err := h.client.RegisterActions(h.asRoot(), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "tokendx.find"}, {Id: "api::tokend.token.find"}}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIntrospectBadActions(t *testing.T) {
	h := newHarness(t)
	_, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	for _, c := range []struct {
		name    string
		actions []string
		field   string
	}{
		{"Empty", []string{""}, "actions[0]"},
		{"NoVerb", []string{"x.find", "x"}, "actions[1]"},
		{"BadCharacter", []string{"x.find!"}, "actions[0]"},
		{"TooLong", []string{"a." + strings.Repeat("b", 199)}, "actions[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.client.IntrospectToken(h.asRoot(), &tokendv1.IntrospectTokenRequest{Token: secret, Actions: c.actions})
			wantInvalid(t, err, c.field)
		})
	}
}

func TestDuplicateNames(t *testing.T) {
	h := newHarness(t)
	first, _ := h.create(t, &tokendv1.Token{Name: "Payments Backend"})
	other, _ := h.create(t, &tokendv1.Token{Name: "other"})
	for _, name := range []string{"Payments Backend", "payments backend", "PAYMENTS BACKEND", "  Payments Backend  ", "\tpayments BACKEND\n", "root", "ROOT", "read only", "Full access"} {
		t.Run("Create/"+name, func(t *testing.T) {
			before := h.listAll(t)
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: name}})
			wantCode(t, err, codes.AlreadyExists)
			if vs := violations(err); len(vs) != 1 || vs[0].GetField() != "token.name" {
				t.Errorf("AlreadyExists details %v, want one violation of token.name", vs)
			}
			if diff := protoDiff(before, h.listAll(t)); diff != "" {
				t.Errorf("a refused create changed the tokens (-before +after):\n%s", diff)
			}
		})
		t.Run("Admin/"+name, func(t *testing.T) {
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: name, Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN}})
			wantCode(t, err, codes.AlreadyExists)
		})
		t.Run("Rename/"+name, func(t *testing.T) {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{
				Token: &tokendv1.Token{Id: other.GetId(), Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
			})
			wantCode(t, err, codes.AlreadyExists)
			if got := h.get(t, other.GetId()); got.GetName() != "other" {
				t.Errorf("name after a refused rename = %q", got.GetName())
			}
		})
	}
	t.Run("FreedByRename", func(t *testing.T) {
		if _, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{
			Token: &tokendv1.Token{Id: first.GetId(), Name: "renamed"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
		}); err != nil {
			t.Fatal(err)
		}
		h.create(t, &tokendv1.Token{Name: "PAYMENTS backend"})
	})
}

func TestUnknownIDs(t *testing.T) {
	h := newHarness(t)
	deleted, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: deleted.GetId()}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"no-such-token", deleted.GetId(), strings.ToUpper(deleted.GetId()), "../" + deleted.GetId()} {
		t.Run(id, func(t *testing.T) {
			before := h.listAll(t)
			_, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: id})
			wantCode(t, err, codes.NotFound)
			_, err = h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{
				Token: &tokendv1.Token{Id: id, Name: "new name"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
			})
			wantCode(t, err, codes.NotFound)
			_, err = h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: id})
			wantCode(t, err, codes.NotFound)
			_, err = h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: id})
			wantCode(t, err, codes.NotFound)
			if diff := protoDiff(before, h.listAll(t)); diff != "" {
				t.Errorf("requests for an unknown id changed the tokens (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("EmptyID", func(t *testing.T) {
		_, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{})
		wantInvalid(t, err, "id")
		_, err = h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{})
		wantInvalid(t, err, "id")
		_, err = h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{})
		wantInvalid(t, err, "id")
	})
}

// TestBadRequestsChangeNothing sends one of each kind of refused request and
// checks that tokens and catalog are exactly as before.
func TestBadRequestsChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find")
	custom, customSecret := h.create(t, &tokendv1.Token{Name: "custom", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"x.find"}, Lifespan: durationpb.New(7 * day)})
	readOnly, _ := h.create(t, &tokendv1.Token{Name: "plain reader"})
	_, weakAdmin := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	// Settle last-use times: the first call with a credential records it.
	h.listAll(t)
	h.introspect(t, customSecret)
	if _, err := h.client.ListTokens(h.as(weakAdmin), &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatal(err)
	}

	snapshot := func() ([]*tokendv1.Token, []*tokendv1.Action) {
		t.Helper()
		actions, err := h.client.ListActions(h.asRoot(), &tokendv1.ListActionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return h.listAll(t), actions.GetActions()
	}
	tokensBefore, actionsBefore := snapshot()

	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	bad := []struct {
		name string
		code codes.Code
		call func() error
	}{
		{"CreateDuplicate", codes.AlreadyExists, func() error {
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "CUSTOM"}})
			return err
		}},
		{"CreateInvalid", codes.InvalidArgument, func() error {
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "new", Lifespan: durationpb.New(day)}})
			return err
		}},
		{"CreateUnauthenticated", codes.Unauthenticated, func() error {
			_, err := h.client.CreateToken(h.ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "new"}})
			return err
		}},
		{"CreateDenied", codes.PermissionDenied, func() error {
			_, err := h.client.CreateToken(h.as(weakAdmin), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "new"}})
			return err
		}},
		{"UpdateImmutable", codes.InvalidArgument, func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: custom.GetId(), Name: "new", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN}, UpdateMask: mask("name", "kind")})
			return err
		}},
		{"UpdateOneGoodOneBadField", codes.InvalidArgument, func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: custom.GetId(), Name: "new", Lifespan: durationpb.New(day)}, UpdateMask: mask("name", "lifespan")})
			return err
		}},
		{"UpdateBadPermissionsAfterGoodName", codes.InvalidArgument, func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: custom.GetId(), Name: "new", Permissions: []string{"y.find"}}, UpdateMask: mask("name", "permissions")})
			return err
		}},
		{"UpdateToCustomWithoutPermissions", codes.InvalidArgument, func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: readOnly.GetId(), Name: "new", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM}, UpdateMask: mask("name", "type")})
			return err
		}},
		{"UpdateDuplicate", codes.AlreadyExists, func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: readOnly.GetId(), Name: "Custom", Description: "new"}, UpdateMask: mask("name", "description")})
			return err
		}},
		{"UpdateUnknown", codes.NotFound, func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: "nope", Name: "new"}, UpdateMask: mask("name")})
			return err
		}},
		{"UpdateDenied", codes.PermissionDenied, func() error {
			_, err := h.client.UpdateToken(h.as(weakAdmin), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: custom.GetId(), Name: "new"}, UpdateMask: mask("name")})
			return err
		}},
		{"DeleteUnknown", codes.NotFound, func() error {
			_, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: "nope"})
			return err
		}},
		{"DeleteDenied", codes.PermissionDenied, func() error {
			_, err := h.client.DeleteToken(h.as(weakAdmin), &tokendv1.DeleteTokenRequest{Id: custom.GetId()})
			return err
		}},
		{"RegenerateUnknown", codes.NotFound, func() error {
			_, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: "nope"})
			return err
		}},
		{"RegenerateDenied", codes.PermissionDenied, func() error {
			_, err := h.client.RegenerateToken(h.as(weakAdmin), &tokendv1.RegenerateTokenRequest{Id: custom.GetId()})
			return err
		}},
		{"RegisterReserved", codes.InvalidArgument, func() error {
			_, err := h.client.RegisterActions(h.asRoot(), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "y.find"}, {Id: "tokend.y.find"}}})
			return err
		}},
		{"RegisterDenied", codes.PermissionDenied, func() error {
			_, err := h.client.RegisterActions(h.as(weakAdmin), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "y.find"}}})
			return err
		}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			wantCode(t, c.call(), c.code)
		})
	}
	tokensAfter, actionsAfter := snapshot()
	if diff := protoDiff(tokensBefore, tokensAfter); diff != "" {
		t.Errorf("refused requests changed the tokens (-before +after):\n%s", diff)
	}
	if diff := protoDiff(actionsBefore, actionsAfter); diff != "" {
		t.Errorf("refused requests changed the catalog (-before +after):\n%s", diff)
	}
	h.wantActive(t, customSecret)
}

// failingStore makes reads fail on demand, as a broken disk would.
type failingStore struct {
	storage.Store
	err atomic.Pointer[error]
}

func (f *failingStore) failWith(err error) { f.err.Store(&err) }

func (f *failingStore) GetToken(ctx context.Context, id string) (*storage.Token, error) {
	if p := f.err.Load(); p != nil && *p != nil {
		return nil, *p
	}
	return f.Store.GetToken(ctx, id)
}

func (f *failingStore) ListTokens(ctx context.Context, q storage.ListQuery) (*storage.ListPage, error) {
	if p := f.err.Load(); p != nil && *p != nil {
		return nil, *p
	}
	return f.Store.ListTokens(ctx, q)
}

// TestUnexpectedStoreErrors: an unexpected failure reaches the caller as
// Internal "internal error", with the detail only in the log.
func TestUnexpectedStoreErrors(t *testing.T) {
	fs := &failingStore{}
	h := newHarness(t, func(c *service.Config) {
		fs.Store = c.Store
		c.Store = fs
	})
	tok, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)

	fs.failWith(fmt.Errorf("read page 42: %w", errors.New("bbolt: disk on fire")))
	_, err := h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: tok.GetId()})
	wantCode(t, err, codes.Internal)
	if msg := grpcstatus.Convert(err).Message(); msg != "internal error" {
		t.Errorf("message %q, want %q", msg, "internal error")
	}
	_, err = h.client.ListTokens(h.asRoot(), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Internal)
	if !strings.Contains(h.logs.String(), "disk on fire") {
		t.Errorf("the log lacks the error's detail:\n%s", h.logs.String())
	}

	// A closed store means shutting down, not a bug.
	fs.failWith(fmt.Errorf("get token: %w", storage.ErrClosed))
	_, err = h.client.GetToken(h.asRoot(), &tokendv1.GetTokenRequest{Id: tok.GetId()})
	wantCode(t, err, codes.Unavailable)

	// Introspection never reads the store, so it keeps working.
	_, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	fs.failWith(errors.New("still broken"))
	h.wantActive(t, secret)
	fs.failWith(nil)
	h.get(t, tok.GetId())
}
