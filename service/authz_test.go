package service_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

// rpcCase is one RPC of the authorization matrix: the admin action it
// requires and a valid call made with the credential carried by ctx. Setup
// (targets to read, update, delete…) is done as root inside call, so the
// only thing that can fail the call is the credential.
type rpcCase struct {
	rpc    string
	action string
	call   func(t *testing.T, h *harness, ctx context.Context) error
}

// rpcCases lists every RPC of TokenService.
func rpcCases() []rpcCase {
	return []rpcCase{
		{"CreateToken", actTokenCreate, func(t *testing.T, h *harness, ctx context.Context) error {
			resp, err := h.client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: h.uniqueName("matrix create")}})
			if err == nil {
				h.remember(resp.GetSecret())
			}
			return err
		}},
		{"GetToken", actTokenFindOne, func(t *testing.T, h *harness, ctx context.Context) error {
			target, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
			_, err := h.client.GetToken(ctx, &tokendv1.GetTokenRequest{Id: target.GetId()})
			return err
		}},
		{"ListTokens", actTokenFind, func(t *testing.T, h *harness, ctx context.Context) error {
			_, err := h.client.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 5})
			return err
		}},
		{"UpdateToken", actTokenUpdate, func(t *testing.T, h *harness, ctx context.Context) error {
			target, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
			_, err := h.client.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
				Token:      &tokendv1.Token{Id: target.GetId(), Description: "updated"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
			})
			return err
		}},
		{"DeleteToken", actTokenDelete, func(t *testing.T, h *harness, ctx context.Context) error {
			target, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
			_, err := h.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: target.GetId()})
			return err
		}},
		{"RegenerateToken", actTokenRegenerate, func(t *testing.T, h *harness, ctx context.Context) error {
			target, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
			resp, err := h.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: target.GetId()})
			if err == nil {
				h.remember(resp.GetSecret())
			}
			return err
		}},
		{"IntrospectToken", actTokenIntrospect, func(t *testing.T, h *harness, ctx context.Context) error {
			_, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
			resp, err := h.client.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: secret, Actions: []string{"m.find"}})
			if err == nil && (!resp.GetActive() || !resp.GetAllowed()) {
				t.Errorf("IntrospectToken of a fresh read-only token for m.find: active %v, allowed %v", resp.GetActive(), resp.GetAllowed())
			}
			return err
		}},
		{"RegisterActions", actActionRegister, func(t *testing.T, h *harness, ctx context.Context) error {
			_, err := h.client.RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "m.find", Description: "matrix"}}})
			return err
		}},
		{"ListActions", actActionFind, func(t *testing.T, h *harness, ctx context.Context) error {
			_, err := h.client.ListActions(ctx, &tokendv1.ListActionsRequest{})
			return err
		}},
		// Reading the audit trail is an admin action of its own.
		{"ListAuditEvents", "tokend.audit.find", func(t *testing.T, h *harness, ctx context.Context) error {
			_, err := h.client.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: 5})
			return err
		}},
	}
}

// TestAuthorizationMatrix runs every RPC with every kind of credential.
func TestAuthorizationMatrix(t *testing.T) {
	h := newHarness(t)
	h.register(t, "m.find")

	// Made first, so that the clock can move past its expiry at once.
	_, expiredAdmin := h.create(t, &tokendv1.Token{Name: "expired admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN,
		Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Lifespan: durationpb.New(7 * day)})
	h.clock.Advance(7*day + time.Second)

	deletedToken, deletedAdmin := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: deletedToken.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, readOnlyAdmin := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	_, fullAdmin := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	_, apiToken := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	// Custom admin tokens holding exactly the action of each RPC, and every
	// admin action but that one.
	catalog, err := h.client.ListActions(h.asRoot(), &tokendv1.ListActionsRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	withAction := map[string]string{}
	withoutAction := map[string]string{}
	for _, rc := range rpcCases() {
		_, withAction[rc.action] = h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, rc.action)
		var others []string
		for _, a := range catalog.GetActions() {
			if a.GetId() != rc.action {
				others = append(others, a.GetId())
			}
		}
		_, withoutAction[rc.action] = h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, others...)
	}
	// Read-only holds the find and findOne verbs: of the admin actions,
	// tokend.token.find, tokend.token.findOne, tokend.action.find and
	// tokend.audit.find.
	readOnlyHolds := func(action string) bool {
		_, verb, _ := cutLast(action)
		return verb == "find" || verb == "findOne"
	}
	for _, a := range []string{actTokenFind, actTokenFindOne, actActionFind} {
		if !readOnlyHolds(a) {
			t.Fatalf("read-only should hold %s", a)
		}
	}

	bearer := func(secret string) func(rpcCase) context.Context {
		return func(rpcCase) context.Context { return h.as(secret) }
	}
	ok := func(rpcCase) codes.Code { return codes.OK }
	unauthenticated := func(rpcCase) codes.Code { return codes.Unauthenticated }
	credentials := []struct {
		name string
		ctx  func(rpcCase) context.Context
		want func(rpcCase) codes.Code
	}{
		{"NoCredential", func(rpcCase) context.Context { return h.ctx }, unauthenticated},
		{"Malformed", bearer("not-a-token"), unauthenticated},
		{"APIToken", bearer(apiToken), unauthenticated},
		{"AdminReadOnly", bearer(readOnlyAdmin), func(rc rpcCase) codes.Code {
			if readOnlyHolds(rc.action) {
				return codes.OK
			}
			return codes.PermissionDenied
		}},
		{"AdminCustomWithoutAction", func(rc rpcCase) context.Context { return h.as(withoutAction[rc.action]) }, func(rpcCase) codes.Code { return codes.PermissionDenied }},
		{"AdminCustomWithAction", func(rc rpcCase) context.Context { return h.as(withAction[rc.action]) }, ok},
		{"AdminFullAccess", bearer(fullAdmin), ok},
		{"Root", bearer(h.root), ok},
		{"ExpiredAdmin", bearer(expiredAdmin), unauthenticated},
		{"DeletedAdmin", bearer(deletedAdmin), unauthenticated},
	}
	for _, rc := range rpcCases() {
		for _, cred := range credentials {
			t.Run(rc.rpc+"/"+cred.name, func(t *testing.T) {
				err := rc.call(t, h, cred.ctx(rc))
				wantCode(t, err, cred.want(rc))
			})
		}
	}
}

// TestAuthorizationHeader covers the forms of the authorization metadata.
func TestAuthorizationHeader(t *testing.T) {
	h := newHarness(t)
	flipped := []byte(h.root)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	cases := []struct {
		name   string
		values []string
		want   codes.Code
	}{
		{"Bearer", []string{"Bearer " + h.root}, codes.OK},
		{"LowerCaseScheme", []string{"bearer " + h.root}, codes.OK},
		{"UpperCaseScheme", []string{"BEARER " + h.root}, codes.OK},
		{"NoScheme", []string{h.root}, codes.Unauthenticated},
		{"BasicScheme", []string{"Basic " + h.root}, codes.Unauthenticated},
		{"SchemeOnly", []string{"Bearer"}, codes.Unauthenticated},
		{"SchemeAndSpace", []string{"Bearer "}, codes.Unauthenticated},
		{"Empty", []string{""}, codes.Unauthenticated},
		{"TwoValues", []string{"Bearer " + h.root, "Bearer " + h.root}, codes.Unauthenticated},
		{"FlippedChar", []string{"Bearer " + string(flipped)}, codes.Unauthenticated},
		{"Truncated", []string{"Bearer " + h.root[:len(h.root)-1]}, codes.Unauthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			md := metadata.MD{}
			for _, v := range c.values {
				md.Append("authorization", v)
			}
			_, err := h.client.ListTokens(metadata.NewOutgoingContext(h.ctx, md), &tokendv1.ListTokensRequest{})
			wantCode(t, err, c.want)
		})
	}
}

// TestCeiling: a limited admin can never mint or take over a stronger admin
// token, while API tokens are not bounded by it.
func TestCeiling(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find", "x.create")
	rootID := ""
	for _, tok := range h.listAll(t) {
		if tok.GetName() == "Root" {
			rootID = tok.GetId()
		}
	}
	_, creator := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, actTokenCreate, actTokenFind)
	// Its first use records last_used_time; get that out of the way.
	if _, err := h.client.ListTokens(h.as(creator), &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatal(err)
	}

	admin := tokendv1.TokenKind_TOKEN_KIND_ADMIN
	custom := tokendv1.TokenType_TOKEN_TYPE_CUSTOM
	createCases := []struct {
		name string
		tok  *tokendv1.Token
		want codes.Code
	}{
		{"AdminFullAccess", &tokendv1.Token{Kind: admin, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, codes.PermissionDenied},
		{"AdminReadOnly", &tokendv1.Token{Kind: admin, Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}, codes.PermissionDenied},
		{"AdminUnspecifiedType", &tokendv1.Token{Kind: admin}, codes.PermissionDenied},
		{"AdminCustomDelete", &tokendv1.Token{Kind: admin, Type: custom, Permissions: []string{actTokenDelete}}, codes.PermissionDenied},
		{"AdminCustomCreateAndDelete", &tokendv1.Token{Kind: admin, Type: custom, Permissions: []string{actTokenCreate, actTokenDelete}}, codes.PermissionDenied},
		{"AdminCustomFindOne", &tokendv1.Token{Kind: admin, Type: custom, Permissions: []string{actTokenFindOne}}, codes.PermissionDenied},
		{"AdminCustomFind", &tokendv1.Token{Kind: admin, Type: custom, Permissions: []string{actTokenFind}}, codes.OK},
		{"AdminCustomCreate", &tokendv1.Token{Kind: admin, Type: custom, Permissions: []string{actTokenCreate}}, codes.OK},
		{"AdminCustomSame", &tokendv1.Token{Kind: admin, Type: custom, Permissions: []string{actTokenFind, actTokenCreate}}, codes.OK},
		{"APIReadOnly", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}, codes.OK},
		{"APIFullAccess", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}, codes.OK},
		{"APICustom", &tokendv1.Token{Type: custom, Permissions: []string{"x.find", "x.create"}}, codes.OK},
	}
	for _, c := range createCases {
		t.Run("Create/"+c.name, func(t *testing.T) {
			before := h.listAll(t)
			in := clone(c.tok)
			in.Name = h.uniqueName("ceiling")
			resp, err := h.client.CreateToken(h.as(creator), &tokendv1.CreateTokenRequest{Token: in})
			wantCode(t, err, c.want)
			if err != nil {
				if diff := protoDiff(before, h.listAll(t)); diff != "" {
					t.Errorf("a refused create changed the tokens (-before +after):\n%s", diff)
				}
				return
			}
			h.remember(resp.GetSecret())
		})
	}
	t.Run("CreatorCannotTouchRoot", func(t *testing.T) {
		_, err := h.client.RegenerateToken(h.as(creator), &tokendv1.RegenerateTokenRequest{Id: rootID})
		wantCode(t, err, codes.PermissionDenied)
		_, err = h.client.DeleteToken(h.as(creator), &tokendv1.DeleteTokenRequest{Id: rootID})
		wantCode(t, err, codes.PermissionDenied)
	})

	// manager may regenerate, delete and update, but lacks introspect and
	// the action catalog: the ceiling, not the action check, stops it.
	_, manager := h.adminToken(t, custom, actTokenCreate, actTokenFind, actTokenFindOne, actTokenUpdate, actTokenDelete, actTokenRegenerate)
	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	t.Run("ManagerCannotRegenerateRoot", func(t *testing.T) {
		_, err := h.client.RegenerateToken(h.as(manager), &tokendv1.RegenerateTokenRequest{Id: rootID})
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("ManagerCannotDeleteRoot", func(t *testing.T) {
		_, err := h.client.DeleteToken(h.as(manager), &tokendv1.DeleteTokenRequest{Id: rootID})
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("ManagerCannotEditRoot", func(t *testing.T) {
		_, err := h.client.UpdateToken(h.as(manager), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: rootID, Description: "mine"}, UpdateMask: mask("description")})
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("RootStillWorks", func(t *testing.T) {
		if _, err := h.client.ListActions(h.asRoot(), &tokendv1.ListActionsRequest{}); err != nil {
			t.Fatal(err)
		}
		if got := h.get(t, rootID); got.GetDescription() == "mine" {
			t.Error("root's description was changed")
		}
	})
	t.Run("ManagerCannotRaiseAnAdminToken", func(t *testing.T) {
		weak, _ := h.adminToken(t, custom, actTokenFind)
		for _, c := range []struct {
			name string
			in   *tokendv1.Token
		}{
			{"ToFullAccess", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}},
			{"ToReadOnly", &tokendv1.Token{Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}}, // holds tokend.action.find
			{"ToCustomIntrospect", &tokendv1.Token{Type: custom, Permissions: []string{actTokenFind, actTokenIntrospect}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				in := clone(c.in)
				in.Id = weak.GetId()
				_, err := h.client.UpdateToken(h.as(manager), &tokendv1.UpdateTokenRequest{Token: in, UpdateMask: mask("type", "permissions")})
				wantCode(t, err, codes.PermissionDenied)
				if got := h.get(t, weak.GetId()); got.GetType() != custom || !equalStrings(got.GetPermissions(), []string{actTokenFind}) {
					t.Errorf("after a refused update: type %v, permissions %q", got.GetType(), got.GetPermissions())
				}
			})
		}
		t.Run("WithinCeiling", func(t *testing.T) {
			resp, err := h.client.UpdateToken(h.as(manager), &tokendv1.UpdateTokenRequest{
				Token:      &tokendv1.Token{Id: weak.GetId(), Type: custom, Permissions: []string{actTokenFind, actTokenDelete}},
				UpdateMask: mask("type", "permissions"),
			})
			if err != nil {
				t.Fatal(err)
			}
			if !equalStrings(sorted(resp.GetToken().GetPermissions()), []string{actTokenDelete, actTokenFind}) {
				t.Errorf("permissions = %q", resp.GetToken().GetPermissions())
			}
		})
	})
	t.Run("ManagerCanRegenerateAndDeleteWeakerAdmins", func(t *testing.T) {
		weak, weakSecret := h.adminToken(t, custom, actTokenFind, actTokenDelete)
		resp, err := h.client.RegenerateToken(h.as(manager), &tokendv1.RegenerateTokenRequest{Id: weak.GetId()})
		if err != nil {
			t.Fatalf("RegenerateToken: %v", err)
		}
		h.remember(resp.GetSecret())
		_, err = h.client.ListTokens(h.as(weakSecret), &tokendv1.ListTokensRequest{})
		wantCode(t, err, codes.Unauthenticated)
		if _, err := h.client.DeleteToken(h.as(manager), &tokendv1.DeleteTokenRequest{Id: weak.GetId()}); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
	})
	t.Run("ManagerCanRegenerateAndDeleteAnyAPIToken", func(t *testing.T) {
		api, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
		resp, err := h.client.RegenerateToken(h.as(manager), &tokendv1.RegenerateTokenRequest{Id: api.GetId()})
		if err != nil {
			t.Fatalf("RegenerateToken: %v", err)
		}
		h.remember(resp.GetSecret())
		if _, err := h.client.DeleteToken(h.as(manager), &tokendv1.DeleteTokenRequest{Id: api.GetId()}); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
	})
}

// TestCallInfo: the service reports which admin token made a call.
func TestCallInfo(t *testing.T) {
	h := newHarness(t)
	admin, secret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	ctx, ci := service.WithCallInfo(metadata.NewIncomingContext(h.ctx, metadata.Pairs("authorization", "Bearer "+secret)))
	if _, err := h.svc.ListTokens(ctx, &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatal(err)
	}
	if ci.CallerID != admin.GetId() {
		t.Errorf("CallerID = %q, want %q", ci.CallerID, admin.GetId())
	}
	ctx, ci = service.WithCallInfo(metadata.NewIncomingContext(h.ctx, metadata.Pairs("authorization", "Bearer not-a-token")))
	if _, err := h.svc.ListTokens(ctx, &tokendv1.ListTokensRequest{}); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("ListTokens with a bad credential: %v", err)
	}
	if ci.CallerID != "" {
		t.Errorf("CallerID = %q for an unauthenticated call", ci.CallerID)
	}
}
