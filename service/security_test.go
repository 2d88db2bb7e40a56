package service_test

// Tests of the security features the service implements: zero-downtime
// rotation with a grace period, the audit trail and the window of
// brute-force damping. They run on the
// shared harness: real bbolt, the real Service on a fake clock, bufconn.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

// regenerate regenerates id as root with an optional grace period (nil for
// none) and returns the response.
func regenerate(t *testing.T, h *harness, id string, grace *durationpb.Duration) *tokendv1.RegenerateTokenResponse {
	t.Helper()
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: id, GracePeriod: grace})
	if err != nil {
		t.Fatalf("RegenerateToken(%s, grace %v): %v", id, grace, err)
	}
	h.remember(resp.GetSecret())
	return resp
}

// wantPrevious fails unless secret is active as the previous secret of its
// token, ending at end.
func wantPrevious(t *testing.T, h *harness, secret string, end time.Time) {
	t.Helper()
	resp := h.wantActive(t, secret)
	if !resp.GetPreviousSecret() {
		t.Fatalf("IntrospectToken(previous secret): previous_secret = false")
	}
	if got := resp.GetToken().GetPreviousSecretExpireTime(); got == nil || !got.AsTime().Equal(end) {
		t.Fatalf("previous_secret_expire_time = %v, want %v", got, end)
	}
}

// wantCurrent fails unless secret is active as its token's current secret.
func wantCurrent(t *testing.T, h *harness, secret string) {
	t.Helper()
	if resp := h.wantActive(t, secret); resp.GetPreviousSecret() {
		t.Fatalf("IntrospectToken(current secret): previous_secret = true")
	}
}

func TestRegenerateGracePeriod(t *testing.T) {
	h := newHarness(t)
	tok, oldSecret := h.create(t, &tokendv1.Token{Name: "rotating", Lifespan: lifespan(30 * day)})
	start := h.clock.Advance(day)
	resp := regenerate(t, h, tok.GetId(), durationpb.New(time.Hour))
	newSecret := resp.GetSecret()
	end := start.Add(time.Hour)

	// The token shows when the previous secret stops working.
	if got := resp.GetToken().GetPreviousSecretExpireTime(); got == nil || !got.AsTime().Equal(end) {
		t.Fatalf("RegenerateToken: previous_secret_expire_time = %v, want %v", got, end)
	}
	if got := h.get(t, tok.GetId()).GetPreviousSecretExpireTime(); got == nil || !got.AsTime().Equal(end) {
		t.Fatalf("GetToken: previous_secret_expire_time = %v, want %v", got, end)
	}
	// The lifespan clock restarts for the new secret.
	if got := resp.GetToken().GetExpireTime().AsTime(); !got.Equal(start.Add(30 * day)) {
		t.Errorf("expire_time = %v, want %v", got, start.Add(30*day))
	}

	wantPrevious(t, h, oldSecret, end)
	wantCurrent(t, h, newSecret)
	h.clock.Set(end.Add(-time.Nanosecond))
	wantPrevious(t, h, oldSecret, end)
	h.clock.Set(end)
	h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	wantCurrent(t, h, newSecret)
	h.clock.Advance(time.Hour)
	h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
}

// TestGraceEndIsNotShownAfterItEnds: the proto says
// previous_secret_expire_time is set "while a rotation's grace period runs;
// unset otherwise", so once it has passed no view of the token shows it.
func TestGraceEndIsNotShownAfterItEnds(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.create(t, &tokendv1.Token{Name: "rotated"})
	newSecret := regenerate(t, h, tok.GetId(), durationpb.New(time.Minute)).GetSecret()
	h.clock.Advance(time.Minute)
	if got := h.get(t, tok.GetId()).GetPreviousSecretExpireTime(); got != nil {
		t.Errorf("GetToken after the grace period: previous_secret_expire_time = %v, want unset", got.AsTime())
	}
	for _, listed := range h.listAll(t) {
		if listed.GetId() == tok.GetId() && listed.GetPreviousSecretExpireTime() != nil {
			t.Errorf("ListTokens after the grace period: previous_secret_expire_time = %v, want unset", listed.GetPreviousSecretExpireTime().AsTime())
		}
	}
	if got := h.wantActive(t, newSecret).GetToken().GetPreviousSecretExpireTime(); got != nil {
		t.Errorf("IntrospectToken after the grace period: previous_secret_expire_time = %v, want unset", got.AsTime())
	}
}

func TestRegenerateGracePeriodLimits(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.create(t, &tokendv1.Token{Name: "limits"})
	for _, tt := range []struct {
		name  string
		grace *durationpb.Duration
	}{
		{"OverADay", durationpb.New(24*time.Hour + time.Second)},
		{"JustOverADay", durationpb.New(24*time.Hour + time.Nanosecond)},
		{"AWeek", durationpb.New(7 * day)},
		{"Negative", durationpb.New(-time.Second)},
		{"NegativeNanos", &durationpb.Duration{Nanos: -1}},
		{"Invalid", &durationpb.Duration{Seconds: 1, Nanos: -1}},
		{"OutOfRange", &durationpb.Duration{Seconds: 1 << 62}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.get(t, tok.GetId())
			_, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: tok.GetId(), GracePeriod: tt.grace})
			wantInvalid(t, err, "grace_period", "24 hours")
			if diff := protoDiff(before, h.get(t, tok.GetId())); diff != "" {
				t.Errorf("a refused regeneration changed the token:\n%s", diff)
			}
		})
	}
	t.Run("ExactlyADay", func(t *testing.T) {
		resp := regenerate(t, h, tok.GetId(), durationpb.New(24*time.Hour))
		want := h.clock.Now().Add(24 * time.Hour)
		if got := resp.GetToken().GetPreviousSecretExpireTime(); got == nil || !got.AsTime().Equal(want) {
			t.Errorf("previous_secret_expire_time = %v, want %v", got, want)
		}
	})
}

func TestRegenerateWithoutGraceKillsOldSecret(t *testing.T) {
	for _, tt := range []struct {
		name  string
		grace *durationpb.Duration
	}{
		{"Unset", nil},
		{"Zero", durationpb.New(0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tok, oldSecret := h.create(t, &tokendv1.Token{Name: "no grace"})
			resp := regenerate(t, h, tok.GetId(), tt.grace)
			if got := resp.GetToken().GetPreviousSecretExpireTime(); got != nil {
				t.Errorf("previous_secret_expire_time = %v, want unset", got.AsTime())
			}
			h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
			wantCurrent(t, h, resp.GetSecret())
		})
	}
}

// TestGraceNeverOutlivesOldExpiry: the previous secret keeps working for
// the grace period, but never past the expiry it had; an expired secret
// gets no grace at all.
func TestGraceNeverOutlivesOldExpiry(t *testing.T) {
	h := newHarness(t)
	created := h.clock.Now()
	tok, oldSecret := h.create(t, &tokendv1.Token{Name: "expiring", Lifespan: lifespan(7 * day)})
	oldExpiry := created.Add(7 * day)
	h.clock.Set(oldExpiry.Add(-30 * time.Minute))
	resp := regenerate(t, h, tok.GetId(), durationpb.New(24*time.Hour))
	if got := resp.GetToken().GetPreviousSecretExpireTime(); got == nil || !got.AsTime().Equal(oldExpiry) {
		t.Fatalf("previous_secret_expire_time = %v, want the old expiry %v", got, oldExpiry)
	}
	wantPrevious(t, h, oldSecret, oldExpiry)
	h.clock.Set(oldExpiry)
	h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	wantCurrent(t, h, resp.GetSecret())

	t.Run("AlreadyExpired", func(t *testing.T) {
		tok, expired := h.create(t, &tokendv1.Token{Name: "expired", Lifespan: lifespan(7 * day)})
		h.clock.Advance(8 * day)
		h.wantInactive(t, expired, tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED)
		resp := regenerate(t, h, tok.GetId(), durationpb.New(time.Hour))
		if got := resp.GetToken().GetPreviousSecretExpireTime(); got != nil {
			t.Errorf("previous_secret_expire_time = %v for an expired secret, want unset", got.AsTime())
		}
		h.wantInactive(t, expired, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
		wantCurrent(t, h, resp.GetSecret())
	})
}

// TestGraceChainKeepsOnePrevious: regenerating again during a grace period
// replaces the previous secret: the first one dies at once.
func TestGraceChainKeepsOnePrevious(t *testing.T) {
	h := newHarness(t)
	tok, first := h.create(t, &tokendv1.Token{Name: "chain"})
	second := regenerate(t, h, tok.GetId(), durationpb.New(time.Hour)).GetSecret()
	now := h.clock.Advance(time.Minute)
	third := regenerate(t, h, tok.GetId(), durationpb.New(2*time.Hour)).GetSecret()
	h.wantInactive(t, first, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	wantPrevious(t, h, second, now.Add(2*time.Hour))
	wantCurrent(t, h, third)
	// A regeneration without grace ends the running one.
	fourth := regenerate(t, h, tok.GetId(), nil).GetSecret()
	h.wantInactive(t, second, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	h.wantInactive(t, third, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	wantCurrent(t, h, fourth)
}

// TestGraceSurvivesRestartAndEdits: the previous secret is stored, not only
// indexed: it survives a restart and an edit of the token.
func TestGraceSurvivesRestartAndEdits(t *testing.T) {
	h := newHarness(t)
	tok, oldSecret := h.create(t, &tokendv1.Token{Name: "durable"})
	end := h.clock.Now().Add(3 * time.Hour)
	newSecret := regenerate(t, h, tok.GetId(), durationpb.New(3*time.Hour)).GetSecret()
	h.restart(t)
	wantPrevious(t, h, oldSecret, end)
	if _, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{
		Token: &tokendv1.Token{Id: tok.GetId(), Description: "edited during the grace period"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	}); err != nil {
		t.Fatal(err)
	}
	wantPrevious(t, h, oldSecret, end)
	wantCurrent(t, h, newSecret)
	h.clock.Set(end)
	h.restart(t)
	h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	wantCurrent(t, h, newSecret)
}

// TestGraceForAdminCredential: an admin token rotated with a grace period
// keeps authenticating with its previous secret until the period ends, and
// Introspect still reports it as not found (admin tokens never introspect).
func TestGraceForAdminCredential(t *testing.T) {
	h := newHarness(t)
	admin, oldSecret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	resp := regenerate(t, h, admin.GetId(), durationpb.New(10*time.Minute))
	for _, secret := range []string{oldSecret, resp.GetSecret()} {
		if _, err := h.client.ListTokens(h.as(secret), &tokendv1.ListTokensRequest{}); err != nil {
			t.Fatalf("ListTokens during the grace period: %v", err)
		}
	}
	h.wantInactive(t, oldSecret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
	h.clock.Advance(10 * time.Minute)
	_, err := h.client.ListTokens(h.as(oldSecret), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
	if _, err := h.client.ListTokens(h.as(resp.GetSecret()), &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatalf("ListTokens with the new secret: %v", err)
	}
}

// auditAll lists the whole audit trail as root, newest first, following
// page tokens with the given page size.
func auditAll(t *testing.T, h *harness, target string, pageSize int32) []*tokendv1.AuditEvent {
	t.Helper()
	var all []*tokendv1.AuditEvent
	req := &tokendv1.ListAuditEventsRequest{PageSize: pageSize, TargetId: target}
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("ListAuditEvents: more than 1000 pages")
		}
		resp, err := h.client.ListAuditEvents(h.asRoot(), req)
		if err != nil {
			t.Fatalf("ListAuditEvents(%v): %v", req, err)
		}
		if pageSize > 0 && len(resp.GetAuditEvents()) > int(pageSize) {
			t.Fatalf("a page of %d events, asked for %d", len(resp.GetAuditEvents()), pageSize)
		}
		all = append(all, resp.GetAuditEvents()...)
		if resp.GetNextPageToken() == "" {
			return all
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// auditSince returns the events recorded after the newest of before (the
// trail is newest first).
func auditSince(t *testing.T, h *harness, before []*tokendv1.AuditEvent) []*tokendv1.AuditEvent {
	t.Helper()
	all := auditAll(t, h, "", 1000)
	if len(before) == 0 {
		return all
	}
	for i, ev := range all {
		if ev.GetId() == before[0].GetId() {
			return all[:i]
		}
	}
	t.Fatalf("the newest event %s is gone from the trail", before[0].GetId())
	return nil
}

// wantEvent fails unless exactly one event was recorded since before, and
// returns it.
func wantEvent(t *testing.T, h *harness, before []*tokendv1.AuditEvent, what string) *tokendv1.AuditEvent {
	t.Helper()
	since := auditSince(t, h, before)
	if len(since) != 1 {
		t.Fatalf("%s recorded %d audit events, want exactly 1: %v", what, len(since), since)
	}
	return since[0]
}

func rootID(t *testing.T, h *harness) string {
	t.Helper()
	for _, tok := range h.listAll(t) {
		if tok.GetName() == "Root" && tok.GetKind() == tokendv1.TokenKind_TOKEN_KIND_ADMIN {
			return tok.GetId()
		}
	}
	t.Fatal("no Root token")
	return ""
}

func TestAuditTrailRecordsEveryChange(t *testing.T) {
	h := newHarness(t)
	root := rootID(t, h)

	// Bootstrap: one event, no caller, the names of the tokens created.
	events := auditAll(t, h, "", 0)
	if len(events) != 1 {
		t.Fatalf("after Bootstrap the trail holds %d events, want 1: %v", len(events), events)
	}
	boot := events[0]
	if boot.GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_BOOTSTRAP || boot.GetCallerId() != "" || boot.GetCallerName() != "" ||
		!slices.Equal(sorted(boot.GetChangedFields()), []string{"Full Access", "Read Only", "Root"}) || !boot.GetTime().AsTime().Equal(t0) {
		t.Errorf("bootstrap event = %v", boot)
	}

	type step struct {
		name   string
		do     func(t *testing.T) (targetID, targetName string)
		op     tokendv1.AuditOperation
		fields []string
	}
	var id string
	h.register(t, "api::article.article.find") // registered before the steps, checked below
	events = auditAll(t, h, "", 0)
	if ev := events[0]; ev.GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_REGISTER_ACTIONS || ev.GetTargetId() != "" ||
		!slices.Equal(ev.GetChangedFields(), []string{"api::article.article.find"}) || ev.GetCallerId() != root || ev.GetCallerName() != "Root" {
		t.Errorf("register event = %v", ev)
	}
	steps := []step{
		{"Create", func(t *testing.T) (string, string) {
			tok, _ := h.create(t, &tokendv1.Token{Name: "audited", Description: "d", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"api::article.article.find"}, Lifespan: lifespan(7 * day)})
			id = tok.GetId()
			return id, "audited"
		}, tokendv1.AuditOperation_AUDIT_OPERATION_CREATE_TOKEN, []string{"name", "kind", "type", "description", "permissions", "lifespan"}},
		{"Update", func(t *testing.T) (string, string) {
			if _, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{
				Token:      &tokendv1.Token{Id: id, Name: "audited renamed", Description: "e"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description", "name"}},
			}); err != nil {
				t.Fatal(err)
			}
			return id, "audited renamed"
		}, tokendv1.AuditOperation_AUDIT_OPERATION_UPDATE_TOKEN, []string{"name", "description"}},
		{"Regenerate", func(t *testing.T) (string, string) {
			regenerate(t, h, id, nil)
			return id, "audited renamed"
		}, tokendv1.AuditOperation_AUDIT_OPERATION_REGENERATE_TOKEN, nil},
		{"RegenerateWithGrace", func(t *testing.T) (string, string) {
			regenerate(t, h, id, durationpb.New(time.Hour))
			return id, "audited renamed"
		}, tokendv1.AuditOperation_AUDIT_OPERATION_REGENERATE_TOKEN, nil},
		{"Delete", func(t *testing.T) (string, string) {
			if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: id}); err != nil {
				t.Fatal(err)
			}
			return id, "audited renamed"
		}, tokendv1.AuditOperation_AUDIT_OPERATION_DELETE_TOKEN, nil},
		{"RegisterActions", func(t *testing.T) (string, string) {
			h.register(t, "api::b.c.find", "api::b.c.create")
			return "", ""
		}, tokendv1.AuditOperation_AUDIT_OPERATION_REGISTER_ACTIONS, []string{"api::b.c.find", "api::b.c.create"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := auditAll(t, h, "", 0)
			now := h.clock.Advance(time.Minute)
			targetID, targetName := s.do(t)
			ev := wantEvent(t, h, before, s.name)
			if ev.GetOperation() != s.op {
				t.Errorf("operation %v, want %v", ev.GetOperation(), s.op)
			}
			if ev.GetCallerId() != root || ev.GetCallerName() != "Root" {
				t.Errorf("caller %q %q, want %q Root", ev.GetCallerId(), ev.GetCallerName(), root)
			}
			if ev.GetTargetId() != targetID || ev.GetTargetName() != targetName {
				t.Errorf("target %q %q, want %q %q", ev.GetTargetId(), ev.GetTargetName(), targetID, targetName)
			}
			if !ev.GetTime().AsTime().Equal(now) {
				t.Errorf("time %v, want %v", ev.GetTime().AsTime(), now)
			}
			if s.fields != nil && !slices.Equal(sorted(ev.GetChangedFields()), sorted(s.fields)) {
				t.Errorf("changed fields %q, want %q", ev.GetChangedFields(), s.fields)
			}
			if s.op == tokendv1.AuditOperation_AUDIT_OPERATION_REGENERATE_TOKEN && len(ev.GetChangedFields()) == 0 {
				t.Errorf("a regeneration event names no changed field")
			}
			if ev.GetId() == "" || ev.GetId() == before[0].GetId() {
				t.Errorf("event id %q", ev.GetId())
			}
		})
	}

	// Caller name is the name at the time of the change.
	t.Run("CallerNameAtTheTime", func(t *testing.T) {
		admin, secret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
		before := auditAll(t, h, "", 0)
		if _, err := h.client.RegisterActions(h.as(secret), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "api::d.e.find"}}}); err != nil {
			t.Fatal(err)
		}
		ev := wantEvent(t, h, before, "RegisterActions by another admin")
		if ev.GetCallerId() != admin.GetId() || ev.GetCallerName() != admin.GetName() {
			t.Errorf("caller %q %q, want %q %q", ev.GetCallerId(), ev.GetCallerName(), admin.GetId(), admin.GetName())
		}
		if _, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: admin.GetId(), Name: "renamed admin"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}}); err != nil {
			t.Fatal(err)
		}
		for _, old := range auditAll(t, h, admin.GetId(), 0) {
			if old.GetOperation() == tokendv1.AuditOperation_AUDIT_OPERATION_CREATE_TOKEN && old.GetTargetName() != admin.GetName() {
				t.Errorf("a later rename rewrote the create event: %v", old)
			}
		}
	})
}

// TestAuditTrailIgnoresFailedWrites: a refused or failed change leaves no
// event.
func TestAuditTrailIgnoresFailedWrites(t *testing.T) {
	h := newHarness(t)
	h.register(t, "api::a.b.find")
	tok, _ := h.create(t, &tokendv1.Token{Name: "existing"})
	ro, roSecret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	_, limited := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, actTokenCreate, actTokenUpdate, actTokenDelete, actTokenRegenerate)
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }
	before := auditAll(t, h, "", 0)
	for _, tt := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"CreateInvalidName", func() error {
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "\x00"}})
			return err
		}, codes.InvalidArgument},
		{"CreateDuplicateName", func() error {
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "EXISTING"}})
			return err
		}, codes.AlreadyExists},
		{"CreateUnknownPermission", func() error {
			_, err := h.client.CreateToken(h.asRoot(), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "x", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"api::nope.x.find"}}})
			return err
		}, codes.InvalidArgument},
		{"CreatePermissionDenied", func() error {
			_, err := h.client.CreateToken(h.as(roSecret), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "x"}})
			return err
		}, codes.PermissionDenied},
		{"CreateOverCeiling", func() error {
			_, err := h.client.CreateToken(h.as(limited), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "x", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS}})
			return err
		}, codes.PermissionDenied},
		{"CreateUnauthenticated", func() error {
			_, err := h.client.CreateToken(h.as("tkda_nope"), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "x"}})
			return err
		}, codes.Unauthenticated},
		{"UpdateUnknownID", func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: "nope", Name: "x"}, UpdateMask: mask("name")})
			return err
		}, codes.NotFound},
		{"UpdateToTakenName", func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: tok.GetId(), Name: "read only"}, UpdateMask: mask("name")})
			return err
		}, codes.AlreadyExists},
		{"UpdateCustomWithoutPermissions", func() error {
			_, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: tok.GetId(), Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM}, UpdateMask: mask("type")})
			return err
		}, codes.InvalidArgument},
		{"UpdateOverCeiling", func() error {
			_, err := h.client.UpdateToken(h.as(limited), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: ro.GetId(), Name: "x"}, UpdateMask: mask("name")})
			return err
		}, codes.PermissionDenied},
		{"DeleteUnknownID", func() error {
			_, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: "nope"})
			return err
		}, codes.NotFound},
		{"DeleteOverCeiling", func() error {
			_, err := h.client.DeleteToken(h.as(limited), &tokendv1.DeleteTokenRequest{Id: ro.GetId()})
			return err
		}, codes.PermissionDenied},
		{"RegenerateBadGrace", func() error {
			_, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: tok.GetId(), GracePeriod: durationpb.New(25 * time.Hour)})
			return err
		}, codes.InvalidArgument},
		{"RegenerateUnknownID", func() error {
			_, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: "nope"})
			return err
		}, codes.NotFound},
		{"RegisterReserved", func() error {
			_, err := h.client.RegisterActions(h.asRoot(), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "api::ok.x.find"}, {Id: "tokend.x.find"}}})
			return err
		}, codes.InvalidArgument},
		{"RegisterPermissionDenied", func() error {
			_, err := h.client.RegisterActions(h.as(roSecret), &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "api::ok.x.find"}}})
			return err
		}, codes.PermissionDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.want)
			if since := auditSince(t, h, before); len(since) != 0 {
				t.Errorf("a failed write recorded %d events: %v", len(since), since)
			}
		})
	}
}

// TestAuditTrailHoldsNoSecret: across every kind of change, no event holds
// a secret or the keyed hash of one, in any encoding.
func TestAuditTrailHoldsNoSecret(t *testing.T) {
	h := newHarness(t)
	h.register(t, "api::a.b.find")
	var secrets []string
	secrets = append(secrets, h.root)
	tok, s1 := h.create(t, &tokendv1.Token{Name: "api"})
	_, s2 := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	secrets = append(secrets, s1, s2)
	secrets = append(secrets, regenerate(t, h, tok.GetId(), durationpb.New(time.Hour)).GetSecret())
	secrets = append(secrets, regenerate(t, h, tok.GetId(), nil).GetSecret())
	if _, err := h.client.UpdateToken(h.asRoot(), &tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: tok.GetId(), Description: "x"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: tok.GetId()}); err != nil {
		t.Fatal(err)
	}
	var forbidden []string
	for _, s := range secrets {
		mac := hmac.New(sha256.New, h.key)
		mac.Write([]byte(s))
		sum := mac.Sum(nil)
		forbidden = append(forbidden, s, s[strings.IndexByte(s, '_')+1:], hex.EncodeToString(sum),
			base64.StdEncoding.EncodeToString(sum), base64.RawStdEncoding.EncodeToString(sum),
			base64.URLEncoding.EncodeToString(sum), base64.RawURLEncoding.EncodeToString(sum))
	}
	events := auditAll(t, h, "", 0)
	if len(events) < 7 {
		t.Fatalf("%d events, want at least 7", len(events))
	}
	for _, ev := range events {
		text, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range forbidden {
			if strings.Contains(string(text), f) {
				t.Errorf("audit event %s holds a secret or its hash (%.8s…)", text, f)
			}
		}
	}
}

func TestAuditTrailPagesAndFilters(t *testing.T) {
	h := newHarness(t)
	a, _ := h.create(t, &tokendv1.Token{Name: "a"})
	b, _ := h.create(t, &tokendv1.Token{Name: "b"})
	for i := 0; i < 5; i++ {
		h.clock.Advance(time.Second)
		regenerate(t, h, a.GetId(), nil)
		regenerate(t, h, b.GetId(), nil)
	}
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: a.GetId()}); err != nil {
		t.Fatal(err)
	}
	all := auditAll(t, h, "", 1000)
	if len(all) != 1+2+10+1 {
		t.Fatalf("%d events, want 14", len(all))
	}
	// Newest first: the delete, then alternating regenerations, ...,
	// bootstrap last.
	if all[0].GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_DELETE_TOKEN ||
		all[len(all)-1].GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_BOOTSTRAP {
		t.Errorf("trail not newest first: first %v, last %v", all[0].GetOperation(), all[len(all)-1].GetOperation())
	}
	seen := map[string]bool{}
	for i, ev := range all {
		if seen[ev.GetId()] {
			t.Errorf("event id %s repeats", ev.GetId())
		}
		seen[ev.GetId()] = true
		if i > 0 && ev.GetTime().AsTime().After(all[i-1].GetTime().AsTime()) {
			t.Errorf("event %d (%v) is newer than event %d (%v)", i, ev.GetTime().AsTime(), i-1, all[i-1].GetTime().AsTime())
		}
	}
	for _, size := range []int32{1, 2, 3, 13, 14, 15} {
		if paged := auditAll(t, h, "", size); protoDiff(all, paged) != "" {
			t.Errorf("pages of %d differ from one page:\n%s", size, protoDiff(all, paged))
		}
	}
	t.Run("ByTarget", func(t *testing.T) {
		for _, tok := range []*tokendv1.Token{a, b} {
			var want []*tokendv1.AuditEvent
			for _, ev := range all {
				if ev.GetTargetId() == tok.GetId() {
					want = append(want, ev)
				}
			}
			for _, size := range []int32{1, 4, 0} {
				if got := auditAll(t, h, tok.GetId(), size); protoDiff(want, got) != "" {
					t.Errorf("target %s, pages of %d:\n%s", tok.GetName(), size, protoDiff(want, got))
				}
			}
		}
		if got := auditAll(t, h, "no such token", 0); len(got) != 0 {
			t.Errorf("an unknown target matched %d events", len(got))
		}
	})
	t.Run("NewEventsDoNotShiftPages", func(t *testing.T) {
		first, err := h.client.ListAuditEvents(h.asRoot(), &tokendv1.ListAuditEventsRequest{PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		regenerate(t, h, b.GetId(), nil)
		second, err := h.client.ListAuditEvents(h.asRoot(), &tokendv1.ListAuditEventsRequest{PageSize: 3, PageToken: first.GetNextPageToken()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := protoDiff(all[3:6], second.GetAuditEvents()); diff != "" {
			t.Errorf("second page after a new event:\n%s", diff)
		}
	})
	t.Run("PageTokenOfAnotherTarget", func(t *testing.T) {
		first, err := h.client.ListAuditEvents(h.asRoot(), &tokendv1.ListAuditEventsRequest{PageSize: 1, TargetId: a.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.client.ListAuditEvents(h.asRoot(), &tokendv1.ListAuditEventsRequest{PageSize: 1, TargetId: b.GetId(), PageToken: first.GetNextPageToken()})
		wantInvalid(t, err, "page_token")
	})
}

func TestAuditTrailRequiresAuditFind(t *testing.T) {
	h := newHarness(t)
	// Every admin action but tokend.audit.find.
	_, without := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, adminActions...)
	_, with := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, "tokend.audit.find")
	_, readOnly := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	_, api := h.create(t, &tokendv1.Token{Name: "api", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	list := func(secret string) error {
		_, err := h.client.ListAuditEvents(h.as(secret), &tokendv1.ListAuditEventsRequest{})
		return err
	}
	wantCode(t, list(without), codes.PermissionDenied)
	wantCode(t, list(api), codes.Unauthenticated)
	wantCode(t, list("tkda_guess"), codes.Unauthenticated)
	if err := list(with); err != nil {
		t.Errorf("custom admin with tokend.audit.find: %v", err)
	}
	// tokend.audit.find is a find action: read-only admins hold it.
	if err := list(readOnly); err != nil {
		t.Errorf("read-only admin: %v", err)
	}
}

func TestPruneAuditEventsHonoursRetention(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.create(t, &tokendv1.Token{Name: "old"}) // at t0, with bootstrap
	h.clock.Advance(10 * day)
	regenerate(t, h, tok.GetId(), nil) // t0 + 10 days
	h.clock.Advance(10 * day)
	regenerate(t, h, tok.GetId(), nil) // t0 + 20 days
	h.clock.Advance(day)               // now t0 + 21 days

	n, err := h.svc.PruneAuditEvents(h.ctx, 30*day)
	if err != nil || n != 0 {
		t.Fatalf("PruneAuditEvents(30 days) = %d, %v; want 0", n, err)
	}
	n, err = h.svc.PruneAuditEvents(h.ctx, 15*day) // before t0 + 6 days
	if err != nil || n != 2 {
		t.Fatalf("PruneAuditEvents(15 days) = %d, %v; want 2 (bootstrap and create)", n, err)
	}
	left := auditAll(t, h, "", 0)
	if len(left) != 2 {
		t.Fatalf("%d events left, want 2", len(left))
	}
	for _, ev := range left {
		if ev.GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_REGENERATE_TOKEN {
			t.Errorf("kept %v", ev)
		}
	}
	if got := auditAll(t, h, tok.GetId(), 0); len(got) != 2 {
		t.Errorf("the target filter still finds %d events, want 2", len(got))
	}
	// An event exactly at the cut-off is kept.
	n, err = h.svc.PruneAuditEvents(h.ctx, 11*day) // before t0 + 10 days
	if err != nil || n != 0 {
		t.Fatalf("PruneAuditEvents(11 days) = %d, %v; want 0", n, err)
	}
	n, err = h.svc.PruneAuditEvents(h.ctx, 0)
	if err != nil || n != 2 {
		t.Fatalf("PruneAuditEvents(0) = %d, %v; want 2", n, err)
	}
	// Events recorded after a prune still list newest first.
	regenerate(t, h, tok.GetId(), nil)
	if got := auditAll(t, h, "", 0); len(got) != 1 || got[0].GetOperation() != tokendv1.AuditOperation_AUDIT_OPERATION_REGENERATE_TOKEN {
		t.Errorf("after pruning everything and one change: %v", got)
	}
}

// TestAuthFailureWindow: at the service, failed authentications are counted
// per client address within a window. Past the limit, further failures from
// that address are answered ResourceExhausted until the window ends, so a
// guesser learns nothing more; a valid credential is still served (a NAT
// may put backends behind the guesser's address), and other addresses are
// not affected.
func TestAuthFailureWindow(t *testing.T) {
	h := newHarness(t, func(c *service.Config) {
		c.AuthFailureLimit = 3
		c.AuthFailureWindow = time.Minute
	})
	call := func(addr, secret string) error {
		ctx, ci := service.WithCallInfo(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret)))
		ci.ClientAddr = addr
		_, err := h.svc.ListTokens(ctx, &tokendv1.ListTokensRequest{})
		return err
	}
	const guesser, other = "192.0.2.1", "192.0.2.2"
	for i := 0; i < 3; i++ {
		wantCode(t, call(guesser, "tkda_guess"), codes.Unauthenticated)
	}
	for _, guess := range []string{"tkda_guess", "", "Basic x", h.root + "x"} {
		wantCode(t, call(guesser, guess), codes.ResourceExhausted)
	}
	if err := call(guesser, h.root); err != nil {
		t.Errorf("a valid credential from the damped address: %v", err)
	}
	wantCode(t, call(other, "tkda_guess"), codes.Unauthenticated)
	if err := call(other, h.root); err != nil {
		t.Errorf("another address: %v", err)
	}
	h.clock.Advance(time.Minute - time.Nanosecond)
	wantCode(t, call(guesser, "tkda_guess"), codes.ResourceExhausted)
	// The window ends: the address starts again from zero.
	h.clock.Advance(time.Nanosecond)
	for i := 0; i < 3; i++ {
		wantCode(t, call(guesser, "tkda_guess"), codes.Unauthenticated)
	}
	wantCode(t, call(guesser, "tkda_guess"), codes.ResourceExhausted)

	// Refusals for lack of permission are not authentication failures.
	_, ro := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	const limited = "192.0.2.3"
	for i := 0; i < 5; i++ {
		ctx, ci := service.WithCallInfo(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+ro)))
		ci.ClientAddr = limited
		_, err := h.svc.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "x"}})
		wantCode(t, err, codes.PermissionDenied)
	}
	wantCode(t, call(limited, "tkda_guess"), codes.Unauthenticated)
}
