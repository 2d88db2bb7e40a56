package service_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

func TestIntrospectActiveToken(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find")
	created, secret := h.create(t, &tokendv1.Token{Name: "active", Description: "d", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"x.find"}, Lifespan: durationpb.New(30 * day)})
	now := h.clock.Advance(time.Minute)
	resp := h.introspect(t, secret, "x.find")
	want := &tokendv1.IntrospectTokenResponse{Active: true, Allowed: true, Token: clone(created)}
	want.Token.LastUsedTime = timestamppb.New(now)
	if diff := protoDiff(want, resp); diff != "" {
		t.Errorf("IntrospectToken (-want +got):\n%s", diff)
	}
	wantNoSecret(t, resp, secret)

	t.Run("NoActions", func(t *testing.T) {
		resp := h.introspect(t, secret)
		if !resp.GetActive() || !resp.GetAllowed() || len(resp.GetDeniedActions()) != 0 {
			t.Errorf("no actions asked: active %v allowed %v denied %q; want active, allowed, none denied", resp.GetActive(), resp.GetAllowed(), resp.GetDeniedActions())
		}
	})
}

// TestTypeActionRules checks which actions each token type allows: read-only
// the find and findOne verbs, full access every action, custom exactly its
// permissions.
func TestTypeActionRules(t *testing.T) {
	h := newHarness(t)
	h.register(t, "x.find", "x.findOne", "x.findMany", "x.create", "x.delete", "api::article.article.find", "api::article.article.findOne", "api::article.article.update")
	_, readOnly := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	_, fullAccess := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	_, custom := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_CUSTOM, "x.create", "x.findMany", "api::article.article.find")

	tokens := []struct {
		name   string
		secret string
		// allowed lists the actions below the type permits.
		allowed []string
	}{
		{"ReadOnly", readOnly, []string{"x.find", "x.findOne", "api::article.article.find", "api::article.article.findOne", "unregistered.find", "a.b.c.findOne"}},
		{"FullAccess", fullAccess, []string{"x.find", "x.findOne", "x.findMany", "x.create", "x.delete", "api::article.article.find", "api::article.article.findOne", "api::article.article.update", "unregistered.find", "unregistered.purge", "a.b.c.findOne", "x.FIND", "x.findone", "x.find_one"}},
		{"Custom", custom, []string{"x.create", "x.findMany", "api::article.article.find"}},
	}
	actions := []string{
		"x.find", "x.findOne", "x.findMany", "x.create", "x.delete",
		"api::article.article.find", "api::article.article.findOne", "api::article.article.update",
		"unregistered.find", "unregistered.purge", "a.b.c.findOne",
		// Verbs are case-sensitive and exact.
		"x.FIND", "x.findone", "x.find_one",
	}
	for _, tok := range tokens {
		allowed := map[string]bool{}
		for _, a := range tok.allowed {
			allowed[a] = true
		}
		for _, a := range actions {
			t.Run(tok.name+"/"+a, func(t *testing.T) {
				resp := h.introspect(t, tok.secret, a)
				want := &tokendv1.IntrospectTokenResponse{Active: true, Allowed: allowed[a]}
				if !allowed[a] {
					want.DeniedActions = []string{a}
				}
				if diff := protoDiff(want, resp, protocmp.IgnoreFields(&tokendv1.IntrospectTokenResponse{}, "token")); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
		t.Run(tok.name+"/AllAtOnce", func(t *testing.T) {
			resp := h.introspect(t, tok.secret, actions...)
			var denied []string
			for _, a := range actions {
				if !allowed[a] {
					denied = append(denied, a)
				}
			}
			if resp.GetAllowed() != (len(denied) == 0) {
				t.Errorf("allowed = %v with %d refused actions", resp.GetAllowed(), len(denied))
			}
			if !equalStrings(resp.GetDeniedActions(), denied) {
				t.Errorf("denied_actions = %q, want %q (in request order)", resp.GetDeniedActions(), denied)
			}
		})
	}
	t.Run("ReadOnly/MixedRequest", func(t *testing.T) {
		resp := h.introspect(t, readOnly, "x.find", "x.create", "x.findOne", "x.findMany")
		want := &tokendv1.IntrospectTokenResponse{Active: true, Allowed: false, DeniedActions: []string{"x.create", "x.findMany"}}
		if diff := protoDiff(want, resp, protocmp.IgnoreFields(&tokendv1.IntrospectTokenResponse{}, "token")); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// TestExpiry drives the fake clock across expire_time.
func TestExpiry(t *testing.T) {
	h := newHarness(t)
	created, secret := h.create(t, &tokendv1.Token{Name: "week", Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Lifespan: durationpb.New(7 * day)})
	expire := created.GetExpireTime().AsTime()
	if !expire.Equal(t0.Add(7 * day)) {
		t.Fatalf("expire_time = %v, want %v", expire, t0.Add(7*day))
	}
	for _, c := range []struct {
		name   string
		at     time.Time
		active bool
	}{
		{"Created", t0, true},
		{"OneDayBefore", expire.Add(-day), true},
		{"OneNanosecondBefore", expire.Add(-time.Nanosecond), true},
		{"AtExpireTime", expire, false},
		{"OneNanosecondAfter", expire.Add(time.Nanosecond), false},
		{"AYearAfter", expire.Add(365 * day), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.clock.Set(c.at)
			if c.active {
				h.wantActive(t, secret)
			} else {
				h.wantInactive(t, secret, tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED)
			}
		})
	}
	t.Run("StillListed", func(t *testing.T) {
		if got := h.get(t, created.GetId()); !got.GetExpireTime().AsTime().Equal(expire) {
			t.Errorf("GetToken of an expired token: expire_time %v", got.GetExpireTime().AsTime())
		}
	})
	t.Run("RegenerateGivesAFullLifespan", func(t *testing.T) {
		h.clock.Set(expire.Add(30 * day))
		resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: created.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		h.remember(resp.GetSecret())
		now := h.clock.Now()
		h.wantActive(t, resp.GetSecret())
		h.wantInactive(t, secret, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
		h.clock.Set(now.Add(7*day - time.Nanosecond))
		h.wantActive(t, resp.GetSecret())
		h.clock.Set(now.Add(7 * day))
		h.wantInactive(t, resp.GetSecret(), tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED)
	})
}

func TestExpiredAdminCredential(t *testing.T) {
	h := newHarness(t)
	created, admin := h.create(t, &tokendv1.Token{Name: "admin week", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS, Lifespan: durationpb.New(7 * day)})
	h.clock.Set(created.GetExpireTime().AsTime().Add(-time.Nanosecond))
	if _, err := h.client.ListTokens(h.as(admin), &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatalf("just before expire_time: %v", err)
	}
	h.clock.Set(created.GetExpireTime().AsTime())
	_, err := h.client.ListTokens(h.as(admin), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
	if strings.Contains(err.Error(), admin) {
		t.Error("the error message contains the credential")
	}
	// Root regenerates it: a full lifespan from now.
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: created.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	h.remember(resp.GetSecret())
	if _, err := h.client.ListTokens(h.as(resp.GetSecret()), &tokendv1.ListTokensRequest{}); err != nil {
		t.Errorf("regenerated expired admin token: %v", err)
	}
}

// TestIntrospectInactive covers every way a string is not an active API
// token: the answer is OK with only inactive_reason set.
func TestIntrospectInactive(t *testing.T) {
	h := newHarness(t)
	_, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	deleted, deletedSecret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	if _, err := h.client.DeleteToken(h.asRoot(), &tokendv1.DeleteTokenRequest{Id: deleted.GetId()}); err != nil {
		t.Fatal(err)
	}
	regenerated, regeneratedAway := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	resp, err := h.client.RegenerateToken(h.asRoot(), &tokendv1.RegenerateTokenRequest{Id: regenerated.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	h.remember(resp.GetSecret())
	_, adminSecret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	_, foreignSecret := newHarness(t).apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)

	body := strings.TrimPrefix(secret, "tkd_")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	malformed := map[string]string{
		"Empty":                 "",
		"PrefixOnly":            "tkd_",
		"NoUnderscore":          "tkd" + body,
		"WrongPrefix":           "tkx_" + body,
		"UpperCasePrefix":       "TKD_" + body,
		"OtherVendorPrefix":     "ghp_" + body,
		"NoPrefix":              body,
		"OneCharShort":          secret[:len(secret)-1],
		"OneCharLong":           secret + "A",
		"BodyCharMissing":       "tkd_" + body[1:],
		"BadAlphabetDash":       "tkd_" + "-" + body[1:],
		"BadAlphabetUnderscore": "tkd_" + body[:10] + "_" + body[11:],
		"BadAlphabetPlus":       "tkd_" + body[:20] + "+" + body[21:],
		"BadAlphabetNonASCII":   "tkd_" + body[:20] + "é" + body[22:],
		"LeadingSpace":          " " + secret,
		"TrailingNewline":       secret + "\n",
		"BearerIncluded":        "Bearer " + secret,
		"FlippedFirstBodyChar":  flip(secret, 4),
		"FlippedMiddleChar":     flip(secret, 4+20),
		"FlippedLastBodyChar":   flip(secret, 4+42),
		"FlippedChecksumChar":   flip(secret, len(secret)-1),
		"SwappedChars":          "tkd_" + body[1:2] + body[0:1] + body[2:],
		"AdminPrefixAPIBody":    "tkda" + secret[3:] + "A",
	}
	// Make sure the swap and flips really changed something.
	if body[0] == body[1] {
		delete(malformed, "SwappedChars")
	}
	for name, s := range malformed {
		t.Run("Malformed/"+name, func(t *testing.T) {
			h.wantInactive(t, s, tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED)
		})
	}
	notFound := map[string]string{
		"Deleted":         deletedSecret,
		"RegeneratedAway": regeneratedAway,
		"AdminToken":      adminSecret,
		"RootToken":       h.root,
		// Well formed, but issued by another tokend (another hash key).
		"NeverIssued": foreignSecret,
	}
	for name, s := range notFound {
		t.Run("NotFound/"+name, func(t *testing.T) {
			h.wantInactive(t, s, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND)
		})
	}
	t.Run("Active", func(t *testing.T) {
		h.wantActive(t, secret)
		h.wantActive(t, resp.GetSecret())
	})
}

func TestAPITokenIsNotACredential(t *testing.T) {
	h := newHarness(t)
	_, secret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	_, err := h.client.ListTokens(h.as(secret), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = h.client.IntrospectToken(h.as(secret), &tokendv1.IntrospectTokenRequest{Token: secret})
	wantCode(t, err, codes.Unauthenticated)
	// Nor with its body under the admin prefix.
	_, err = h.client.ListTokens(h.as("tkda_"+strings.TrimPrefix(secret, "tkd_")), &tokendv1.ListTokensRequest{})
	wantCode(t, err, codes.Unauthenticated)
}

// TestLastUsed: introspection records the use in memory at once, a flush
// persists it, and it survives a restart with the same file and key.
func TestLastUsed(t *testing.T) {
	h := newHarness(t)
	flushed, flushedSecret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	onClose, onCloseSecret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	never, _ := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)

	if got := h.get(t, flushed.GetId()).GetLastUsedTime(); got != nil {
		t.Fatalf("last_used_time of an unused token = %v", got.AsTime())
	}
	firstUse := h.clock.Advance(time.Hour)
	if got := h.wantActive(t, flushedSecret).GetToken().GetLastUsedTime(); got == nil || !got.AsTime().Equal(firstUse) {
		t.Errorf("IntrospectToken last_used_time = %v, want %v", got, firstUse)
	}
	if got := h.get(t, flushed.GetId()).GetLastUsedTime(); got == nil || !got.AsTime().Equal(firstUse) {
		t.Fatalf("GetToken right after introspection: last_used_time = %v, want %v", got, firstUse)
	}
	// Listing shows it too.
	for _, tok := range h.listAll(t) {
		if tok.GetId() == flushed.GetId() && !tok.GetLastUsedTime().AsTime().Equal(firstUse) {
			t.Errorf("ListTokens: last_used_time = %v, want %v", tok.GetLastUsedTime().AsTime(), firstUse)
		}
	}
	// Nothing is written until a flush.
	stored, err := h.store.GetToken(h.ctx, flushed.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if !stored.LastUsedTime.IsZero() {
		t.Errorf("stored last-used time before any flush = %v, want none", stored.LastUsedTime)
	}
	if err := h.svc.FlushLastUsed(h.ctx); err != nil {
		t.Fatalf("FlushLastUsed: %v", err)
	}
	stored, err = h.store.GetToken(h.ctx, flushed.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if !stored.LastUsedTime.Equal(firstUse) {
		t.Errorf("stored last-used time after flush = %v, want %v", stored.LastUsedTime, firstUse)
	}

	// A later use, never flushed explicitly: Close flushes it.
	secondUse := h.clock.Advance(time.Hour)
	h.wantActive(t, onCloseSecret)

	h.restart(t)
	h.clock.Advance(time.Hour)
	for _, c := range []struct {
		name string
		id   string
		want time.Time
	}{
		{"Flushed", flushed.GetId(), firstUse},
		{"FlushedOnClose", onClose.GetId(), secondUse},
		{"NeverUsed", never.GetId(), time.Time{}},
	} {
		t.Run("AfterRestart/"+c.name, func(t *testing.T) {
			got := h.get(t, c.id).GetLastUsedTime()
			if c.want.IsZero() {
				if got != nil {
					t.Errorf("last_used_time = %v, want unset", got.AsTime())
				}
				return
			}
			if got == nil || !got.AsTime().Equal(c.want) {
				t.Errorf("last_used_time = %v, want %v", got, c.want)
			}
		})
	}
	t.Run("AfterRestart/SecretsStillWork", func(t *testing.T) {
		h.wantActive(t, flushedSecret)
		h.wantActive(t, onCloseSecret)
	})
}

// TestLastUsedOfAdminCredential: an admin token's use is recorded too.
func TestLastUsedOfAdminCredential(t *testing.T) {
	h := newHarness(t)
	admin, secret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	used := h.clock.Advance(time.Minute)
	if _, err := h.client.ListTokens(h.as(secret), &tokendv1.ListTokensRequest{}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	if got := h.get(t, admin.GetId()).GetLastUsedTime(); got == nil || !got.AsTime().Equal(used) {
		t.Errorf("admin last_used_time = %v, want %v", got, used)
	}
}

// TestSecretsNeverInErrors: a credential or token in a request never comes
// back in an error message.
func TestSecretsNeverInErrors(t *testing.T) {
	h := newHarness(t)
	_, apiSecret := h.apiToken(t, tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS)
	_, adminSecret := h.adminToken(t, tokendv1.TokenType_TOKEN_TYPE_READ_ONLY)
	almost := adminSecret[:len(adminSecret)-1] + "x"
	for name, cred := range map[string]string{"APIToken": apiSecret, "AlmostAdmin": almost, "ReadOnlyAdmin": adminSecret} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.CreateToken(h.as(cred), &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "x"}})
			if err == nil {
				t.Fatal("CreateToken succeeded")
			}
			if strings.Contains(err.Error(), cred) || strings.Contains(err.Error(), cred[5:]) {
				t.Errorf("error %q contains the credential", err)
			}
		})
	}
	t.Run("IntrospectBadAction", func(t *testing.T) {
		_, err := h.client.IntrospectToken(h.asRoot(), &tokendv1.IntrospectTokenRequest{Token: apiSecret, Actions: []string{"bad action"}})
		wantCode(t, err, codes.InvalidArgument)
		if strings.Contains(err.Error(), apiSecret) {
			t.Errorf("error %q contains the introspected secret", err)
		}
	})
}
