package service

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// CreateToken implements tokendv1.TokenServiceServer.
func (s *Service) CreateToken(ctx context.Context, req *tokendv1.CreateTokenRequest) (*tokendv1.CreateTokenResponse, error) {
	caller, err := s.authorize(ctx, ActionTokenCreate)
	if err != nil {
		return nil, err
	}
	in := req.GetToken()
	if in == nil {
		return nil, invalidField("token", "is required")
	}
	var fe fieldErrors
	name, msg := cleanName(in.GetName())
	if msg != "" {
		fe.add("token.name", "%s", msg)
	}
	description, msg := cleanDescription(in.GetDescription())
	if msg != "" {
		fe.add("token.description", "%s", msg)
	}
	kind, ok := kindFromAPI(in.GetKind())
	if !ok {
		fe.add("token.kind", "%s", badKind)
	} else if kind == 0 {
		kind = storage.KindAPI
	}
	typ, ok := typeFromAPI(in.GetType())
	if !ok {
		fe.add("token.type", "%s", badType)
	} else if typ == 0 {
		typ = storage.TypeReadOnly
	}
	lifespan, msg := s.checkLifespan(in.GetLifespan())
	if msg != "" {
		fe.add("token.lifespan", "%s", msg)
	}
	var perms []string
	if kind != 0 && typ != 0 {
		if perms, err = s.checkPermissions(ctx, &fe, "token.permissions", kind, typ, in.GetPermissions()); err != nil {
			return nil, s.toStatus(ctx, "CreateToken", err)
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	t, secret, err := s.newToken(kind, now)
	if err != nil {
		return nil, s.toStatus(ctx, "CreateToken", err)
	}
	t.Name, t.Description, t.Type, t.Permissions, t.Lifespan = name, description, typ, perms, lifespan
	if lifespan > 0 {
		t.ExpireTime = now.Add(lifespan)
	}
	if err := (&guard{caller: caller}).check(nil, t); err != nil {
		return nil, err
	}
	ev := auditEvent(caller, storage.AuditCreateToken, now)
	ev.TargetID, ev.TargetName = t.ID, t.Name
	ev.Fields = []string{"name", "kind", "type"}
	if t.Description != "" {
		ev.Fields = append(ev.Fields, "description")
	}
	if len(t.Permissions) > 0 {
		ev.Fields = append(ev.Fields, "permissions")
	}
	if t.Lifespan > 0 {
		ev.Fields = append(ev.Fields, "lifespan")
	}
	if err := s.store.CreateToken(ctx, t, ev); err != nil {
		return nil, s.toStatus(ctx, "CreateToken", err)
	}
	return &tokendv1.CreateTokenResponse{Token: tokenView(t, time.Time{}, now), Secret: secret}, nil
}

// checkPermissions validates the permissions of a token of this kind and
// type, adding what is wrong to fe, and returns them sorted and without
// duplicates. The error is for store failures only.
func (s *Service) checkPermissions(ctx context.Context, fe *fieldErrors, field string, kind storage.Kind, typ storage.Type, perms []string) ([]string, error) {
	if typ != storage.TypeCustom {
		if len(perms) > 0 {
			fe.add(field, "only custom tokens take permissions")
		}
		return nil, nil
	}
	switch {
	case len(perms) == 0:
		fe.add(field, "a custom token needs at least one permission")
		return nil, nil
	case len(perms) > maxPermissions:
		fe.add(field, "at most %d permissions (got %d)", maxPermissions, len(perms))
		return nil, nil
	}
	bad := false
	for i, p := range perms {
		if msg := checkActionID(p); msg != "" {
			fe.add(fmt.Sprintf("%s[%d]", field, i), "%s", msg)
			bad = true
		}
	}
	if bad {
		return nil, nil
	}
	clean := slices.Clone(perms)
	slices.Sort(clean)
	clean = slices.Compact(clean)
	known := adminActionSet
	if kind == storage.KindAPI {
		catalog, err := s.store.ListActions(ctx)
		if err != nil {
			return nil, err
		}
		known = make(map[string]bool, len(catalog))
		for _, a := range catalog {
			known[a.ID] = true
		}
	}
	var unknown []string
	for _, p := range clean {
		if !known[p] {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		if kind == storage.KindAPI {
			fe.add(field, "unknown permissions (register them with RegisterActions first): %s", strings.Join(unknown, ", "))
		} else {
			fe.add(field, "unknown admin permissions: %s", strings.Join(unknown, ", "))
		}
	}
	return clean, nil
}

// GetToken implements tokendv1.TokenServiceServer.
func (s *Service) GetToken(ctx context.Context, req *tokendv1.GetTokenRequest) (*tokendv1.GetTokenResponse, error) {
	if _, err := s.authorize(ctx, ActionTokenFindOne); err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, invalidField("id", "is required")
	}
	t, err := s.store.GetToken(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "GetToken", err)
	}
	return &tokendv1.GetTokenResponse{Token: s.view(t)}, nil
}

// view is the API form of a stored token with its in-memory last use.
func (s *Service) view(t *storage.Token) *tokendv1.Token {
	var lastUsed time.Time
	if e := s.index.byTokenID(t.ID); e != nil {
		lastUsed = e.usage.last()
	}
	return tokenView(t, lastUsed, s.now())
}

// ListTokens implements tokendv1.TokenServiceServer.
func (s *Service) ListTokens(ctx context.Context, req *tokendv1.ListTokensRequest) (*tokendv1.ListTokensResponse, error) {
	if _, err := s.authorize(ctx, ActionTokenFind); err != nil {
		return nil, err
	}
	var fe fieldErrors
	q := storage.ListQuery{}
	checkPageSize(&fe, req.GetPageSize(), &q.Limit)
	switch strings.Join(strings.Fields(req.GetOrderBy()), " ") {
	case "", "name", "name asc":
		q.Order = storage.OrderByName
	case "create_time desc", "createTime desc":
		q.Order = storage.OrderByCreateTimeDesc
	default:
		fe.add("order_by", `must be "name" or "create_time desc"`)
	}
	var ok bool
	if q.Kind, ok = kindFromAPI(req.GetKind()); !ok {
		fe.add("kind", "%s", badKind)
	}
	if q.Type, ok = typeFromAPI(req.GetType()); !ok {
		fe.add("type", "%s", badType)
	}
	if eb := req.GetExpireBefore(); eb != nil {
		if err := eb.CheckValid(); err != nil {
			fe.add("expire_before", "must be a valid timestamp")
		} else {
			q.ExpireBefore = eb.AsTime()
		}
	}
	tag := queryTag(q)
	if pt := req.GetPageToken(); pt != "" {
		cursor, ok := strings.CutSuffix(pt, "~"+tag)
		if !ok || cursor == "" {
			fe.add("page_token", "is not a page token of this listing (same order and filters)")
		}
		q.After = cursor
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	page, err := s.store.ListTokens(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, "ListTokens", err)
	}
	resp := &tokendv1.ListTokensResponse{Tokens: make([]*tokendv1.Token, 0, len(page.Tokens))}
	for {
		for _, t := range page.Tokens {
			resp.Tokens = append(resp.Tokens, s.view(t))
		}
		n := fitBudget(resp.Tokens)
		if n == len(resp.Tokens) {
			break
		}
		// Too large: ask again for the tokens that fit, to get the
		// store's cursor after the last of them. Tokens may have grown
		// in between, so the new page is measured again; each round
		// asks for fewer, and one token always fits.
		q.Limit = n
		if page, err = s.store.ListTokens(ctx, q); err != nil {
			return nil, s.toStatus(ctx, "ListTokens", err)
		}
		resp.Tokens = resp.Tokens[:0]
	}
	if page.Next != "" {
		resp.NextPageToken = page.Next + "~" + tag
	}
	return resp, nil
}

// checkPageSize validates a requested page size and sets limit: 0 means
// the default.
func checkPageSize(fe *fieldErrors, size int32, limit *int) {
	switch {
	case size < 0:
		fe.add("page_size", "must not be negative")
	case size > maxPageSize:
		fe.add("page_size", "must be at most %d", maxPageSize)
	case size == 0:
		*limit = defaultPageSize
	default:
		*limit = int(size)
	}
}

// queryTag ties a page token to the order and filters it was issued for, so
// a token replayed against another query is refused rather than misread.
func queryTag(q storage.ListQuery) string {
	var b [3 + 8]byte
	b[0], b[1], b[2] = byte(q.Order), byte(q.Kind), byte(q.Type)
	if !q.ExpireBefore.IsZero() {
		binary.BigEndian.PutUint64(b[3:], uint64(q.ExpireBefore.UnixNano()))
	}
	return hashTag(b[:])
}

// hashTag is a short, non-secret fingerprint of a query.
func hashTag(b []byte) string {
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%08x", h.Sum32())
}

// mutableFields are the update_mask paths UpdateToken accepts.
var mutableFields = []string{"name", "description", "type", "permissions", "lifespan"}

// tokenUpdate is a parsed UpdateToken request: the fields it changes and
// their new values, each already checked on its own.
type tokenUpdate struct {
	id          string
	set         map[string]bool // the mutable fields named by the mask
	name        string
	description string
	typ         storage.Type
	perms       []string // checked against the catalog by validate
	lifespan    time.Duration
}

// UpdateToken implements tokendv1.TokenServiceServer. It parses the request,
// validates it against the stored token, then applies it in one transaction
// under the guard, which sees the token before and after the change.
func (s *Service) UpdateToken(ctx context.Context, req *tokendv1.UpdateTokenRequest) (*tokendv1.UpdateTokenResponse, error) {
	caller, err := s.authorize(ctx, ActionTokenUpdate)
	if err != nil {
		return nil, err
	}
	u, err := s.parseUpdate(req)
	if err != nil {
		return nil, err
	}
	current, g, err := s.guardTarget(ctx, caller, u.id)
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateToken", err)
	}
	if err := s.validateUpdate(ctx, u, current); err != nil {
		return nil, s.toStatus(ctx, "UpdateToken", err)
	}
	now := s.now().UTC()
	ev := auditEvent(caller, storage.AuditUpdateToken, now)
	ev.TargetID = u.id
	for _, f := range mutableFields {
		if u.set[f] {
			ev.Fields = append(ev.Fields, f)
		}
	}
	updated, err := s.store.UpdateToken(ctx, u.id, func(t *storage.Token) error {
		// The guard holds for the token as it is in this transaction,
		// not only as it was read above.
		before := t.Clone()
		if err := u.apply(t, now); err != nil {
			return err
		}
		if err := g.check(before, t); err != nil {
			return err
		}
		dropEndedGrace(t, now)
		t.UpdateTime = now
		ev.TargetName = t.Name
		return nil
	}, ev)
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateToken", g.explain(err))
	}
	return &tokendv1.UpdateTokenResponse{Token: s.view(updated)}, nil
}

// parseUpdate checks what can be checked of an UpdateToken request without
// the store: the id, the mask and each named field on its own. It returns
// InvalidArgument naming every bad field.
func (s *Service) parseUpdate(req *tokendv1.UpdateTokenRequest) (*tokenUpdate, error) {
	in := req.GetToken()
	if in.GetId() == "" {
		return nil, invalidField("token.id", "is required")
	}
	if n := len(req.GetUpdateMask().GetPaths()); n > maxMaskPaths {
		return nil, invalidField("update_mask", "at most %d paths (got %d)", maxMaskPaths, n)
	}
	u := &tokenUpdate{id: in.GetId(), set: map[string]bool{}}
	var fe fieldErrors
	for _, p := range req.GetUpdateMask().GetPaths() {
		switch {
		case p == "*":
			for _, f := range mutableFields {
				u.set[f] = true
			}
		case slices.Contains(mutableFields, p):
			u.set[p] = true
		default:
			fe.add("update_mask", "%q cannot be changed; the mutable fields are %s", p, strings.Join(mutableFields, ", "))
		}
	}
	if len(u.set) == 0 && fe.empty() {
		fe.add("update_mask", "must name at least one of %s", strings.Join(mutableFields, ", "))
	}
	var msg string
	if u.set["name"] {
		if u.name, msg = cleanName(in.GetName()); msg != "" {
			fe.add("token.name", "%s", msg)
		}
	}
	if u.set["description"] {
		if u.description, msg = cleanDescription(in.GetDescription()); msg != "" {
			fe.add("token.description", "%s", msg)
		}
	}
	if u.set["type"] {
		var ok bool
		if u.typ, ok = typeFromAPI(in.GetType()); !ok {
			fe.add("token.type", "%s", badType)
		} else if u.typ == 0 {
			u.typ = storage.TypeReadOnly
		}
	}
	if u.set["lifespan"] {
		if u.lifespan, msg = s.checkLifespan(in.GetLifespan()); msg != "" {
			fe.add("token.lifespan", "%s", msg)
		}
	}
	if u.set["permissions"] {
		u.perms = in.GetPermissions()
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return u, nil
}

// validateUpdate checks the new permissions against the catalog of the
// token's kind and the type it will have, and replaces them with their
// clean form. It returns InvalidArgument, or a store error.
func (s *Service) validateUpdate(ctx context.Context, u *tokenUpdate, current *storage.Token) error {
	if !u.set["permissions"] {
		return nil
	}
	finalType := current.Type
	if u.set["type"] {
		finalType = u.typ
	}
	var fe fieldErrors
	perms, err := s.checkPermissions(ctx, &fe, "token.permissions", current.Kind, finalType, u.perms)
	if err != nil {
		return err
	}
	if err := fe.err(); err != nil {
		return err
	}
	u.perms = perms
	return nil
}

// apply makes the change on t, the token as stored in the write's
// transaction. A custom token left without permissions is refused with
// InvalidArgument.
func (u *tokenUpdate) apply(t *storage.Token, now time.Time) error {
	if u.set["name"] {
		t.Name = u.name
	}
	if u.set["description"] {
		t.Description = u.description
	}
	if u.set["type"] {
		t.Type = u.typ
	}
	switch {
	case t.Type != storage.TypeCustom:
		t.Permissions = nil
	case u.set["permissions"]:
		t.Permissions = slices.Clone(u.perms)
	case len(t.Permissions) == 0:
		return invalidField("token.permissions", "a custom token needs at least one permission")
	}
	if u.set["lifespan"] {
		t.Lifespan = u.lifespan
		t.ExpireTime = time.Time{}
		if u.lifespan > 0 {
			t.ExpireTime = now.Add(u.lifespan)
		}
	}
	return nil
}

// DeleteToken implements tokendv1.TokenServiceServer.
func (s *Service) DeleteToken(ctx context.Context, req *tokendv1.DeleteTokenRequest) (*tokendv1.DeleteTokenResponse, error) {
	caller, err := s.authorize(ctx, ActionTokenDelete)
	if err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, invalidField("id", "is required")
	}
	target, g, err := s.guardTarget(ctx, caller, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "DeleteToken", err)
	}
	ev := auditEvent(caller, storage.AuditDeleteToken, s.now().UTC())
	ev.TargetID, ev.TargetName = target.ID, target.Name
	// The guard is applied again to the token as it is when deleted: it
	// may have gained permissions since the read above.
	check := func(t *storage.Token) error { return g.check(t, nil) }
	if err := s.store.DeleteToken(ctx, req.GetId(), check, ev); err != nil {
		return nil, s.toStatus(ctx, "DeleteToken", g.explain(err))
	}
	return &tokendv1.DeleteTokenResponse{}, nil
}

// guardTarget reads the token a write changes and returns it with the
// write's guard, after applying the ceiling to it as read; UpdateToken,
// DeleteToken and RegenerateToken start with it.
func (s *Service) guardTarget(ctx context.Context, caller *entry, id string) (*storage.Token, *guard, error) {
	t, err := s.store.GetToken(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	g := &guard{caller: caller}
	if err := g.may(t); err != nil {
		return nil, nil, err
	}
	return t, g, nil
}

// dropEndedGrace forgets a previous secret whose grace period is over.
func dropEndedGrace(t *storage.Token, now time.Time) {
	if t.PreviousSecretHash != nil && !now.Before(t.PreviousExpireTime) {
		t.PreviousSecretHash, t.PreviousExpireTime = nil, time.Time{}
	}
}

// RegenerateToken implements tokendv1.TokenServiceServer.
func (s *Service) RegenerateToken(ctx context.Context, req *tokendv1.RegenerateTokenRequest) (*tokendv1.RegenerateTokenResponse, error) {
	caller, err := s.authorize(ctx, ActionTokenRegenerate)
	if err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, invalidField("id", "is required")
	}
	var grace time.Duration
	if g := req.GetGracePeriod(); g != nil {
		if g.CheckValid() != nil || g.AsDuration() < 0 || g.AsDuration() > maxGracePeriod {
			return nil, invalidField("grace_period", "must be between 0s and %ds (24 hours)", int64(maxGracePeriod/time.Second))
		}
		grace = g.AsDuration()
	}
	_, g, err := s.guardTarget(ctx, caller, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "RegenerateToken", err)
	}
	// The secret is drawn on the first call of the modify function and
	// kept, so a retried transaction stores the same one the caller
	// receives.
	var secret string
	var hashed storage.Token
	now := s.now().UTC()
	ev := auditEvent(caller, storage.AuditRegenerateToken, now)
	ev.TargetID = req.GetId()
	ev.Fields = []string{"secret_hint", "expire_time"}
	if grace > 0 {
		ev.Fields = append(ev.Fields, "previous_secret_expire_time")
	}
	updated, err := s.store.UpdateToken(ctx, req.GetId(), func(t *storage.Token) error {
		if secret == "" {
			hashed.Kind = t.Kind
			var err error
			if secret, err = s.setSecret(&hashed); err != nil {
				return err
			}
		}
		before := t.Clone()
		// During a grace period the replaced secret keeps working, but
		// never past its own expiry.
		t.PreviousSecretHash, t.PreviousExpireTime = nil, time.Time{}
		if prevEnd := now.Add(grace); grace > 0 && !expired(t, now) {
			if !t.ExpireTime.IsZero() && t.ExpireTime.Before(prevEnd) {
				prevEnd = t.ExpireTime
			}
			t.PreviousSecretHash, t.PreviousExpireTime = t.SecretHash, prevEnd
		}
		t.SecretHash, t.SecretHint, t.HashKeyID = hashed.SecretHash, hashed.SecretHint, hashed.HashKeyID
		// The clock restarts, so for an admin token the guard also
		// checks the new expiry against the caller's.
		t.ExpireTime = time.Time{}
		if t.Lifespan > 0 {
			t.ExpireTime = now.Add(t.Lifespan)
		}
		if err := g.check(before, t); err != nil {
			return err
		}
		t.UpdateTime = now
		ev.TargetName = t.Name
		return nil
	}, ev)
	if err != nil {
		return nil, s.toStatus(ctx, "RegenerateToken", g.explain(err))
	}
	return &tokendv1.RegenerateTokenResponse{Token: s.view(updated), Secret: secret}, nil
}

// RecoverRoot creates a new unlimited full-access admin token, for an
// operator who has lost every admin credential, and returns it with its
// secret. It is meant for offline use (no server on the store): it needs no
// credential, so no transport may expose it. The audit trail records it as a
// creation by "tokend recover-root". Returns the store's errors.
func (s *Service) RecoverRoot(ctx context.Context) (*storage.Token, string, error) {
	now := s.now().UTC()
	t, secret, err := s.newToken(storage.KindAdmin, now)
	if err != nil {
		return nil, "", err
	}
	// The id's start keeps two recoveries in the same second apart.
	t.Name = "Root (recovered " + now.Format("2006-01-02 15:04:05") + " UTC, " + t.ID[:6] + ")"
	t.Description = "Created offline by tokend recover-root: full access to tokend's own API."
	t.Type = storage.TypeFullAccess
	ev := auditEvent(nil, storage.AuditCreateToken, now)
	ev.CallerName = "tokend recover-root"
	ev.TargetID, ev.TargetName = t.ID, t.Name
	ev.Fields = []string{"name", "description", "kind", "type"}
	if err := s.store.CreateToken(ctx, t, ev); err != nil {
		return nil, "", fmt.Errorf("recover root: %w", err)
	}
	return t, secret, nil
}
