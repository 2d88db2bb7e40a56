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
		fe.add("token.kind", "must be TOKEN_KIND_API or TOKEN_KIND_ADMIN")
	} else if kind == 0 {
		kind = storage.KindAPI
	}
	typ, ok := typeFromAPI(in.GetType())
	if !ok {
		fe.add("token.type", "must be TOKEN_TYPE_READ_ONLY, TOKEN_TYPE_FULL_ACCESS or TOKEN_TYPE_CUSTOM")
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
	if kind == storage.KindAdmin {
		if err := checkCeiling(caller, typ, perms); err != nil {
			return nil, err
		}
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
		fe.add("kind", "must be TOKEN_KIND_API or TOKEN_KIND_ADMIN")
	}
	if q.Type, ok = typeFromAPI(req.GetType()); !ok {
		fe.add("type", "must be TOKEN_TYPE_READ_ONLY, TOKEN_TYPE_FULL_ACCESS or TOKEN_TYPE_CUSTOM")
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
	resp := &tokendv1.ListTokensResponse{Tokens: make([]*tokendv1.Token, len(page.Tokens))}
	for i, t := range page.Tokens {
		resp.Tokens[i] = s.view(t)
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

// UpdateToken implements tokendv1.TokenServiceServer.
func (s *Service) UpdateToken(ctx context.Context, req *tokendv1.UpdateTokenRequest) (*tokendv1.UpdateTokenResponse, error) {
	caller, err := s.authorize(ctx, ActionTokenUpdate)
	if err != nil {
		return nil, err
	}
	in := req.GetToken()
	if in.GetId() == "" {
		return nil, invalidField("token.id", "is required")
	}
	if n := len(req.GetUpdateMask().GetPaths()); n > maxMaskPaths {
		return nil, invalidField("update_mask", "at most %d paths (got %d)", maxMaskPaths, n)
	}
	var fe fieldErrors
	set := map[string]bool{}
	for _, p := range req.GetUpdateMask().GetPaths() {
		switch {
		case p == "*":
			for _, f := range mutableFields {
				set[f] = true
			}
		case slices.Contains(mutableFields, p):
			set[p] = true
		default:
			fe.add("update_mask", "%q cannot be changed; the mutable fields are %s", p, strings.Join(mutableFields, ", "))
		}
	}
	if len(set) == 0 && fe.empty() {
		fe.add("update_mask", "must name at least one of %s", strings.Join(mutableFields, ", "))
	}
	var name, description string
	var msg string
	if set["name"] {
		if name, msg = cleanName(in.GetName()); msg != "" {
			fe.add("token.name", "%s", msg)
		}
	}
	if set["description"] {
		if description, msg = cleanDescription(in.GetDescription()); msg != "" {
			fe.add("token.description", "%s", msg)
		}
	}
	var newType storage.Type
	if set["type"] {
		var ok bool
		if newType, ok = typeFromAPI(in.GetType()); !ok {
			fe.add("token.type", "must be TOKEN_TYPE_READ_ONLY, TOKEN_TYPE_FULL_ACCESS or TOKEN_TYPE_CUSTOM")
		} else if newType == 0 {
			newType = storage.TypeReadOnly
		}
	}
	var lifespan time.Duration
	if set["lifespan"] {
		if lifespan, msg = s.checkLifespan(in.GetLifespan()); msg != "" {
			fe.add("token.lifespan", "%s", msg)
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	current, err := s.store.GetToken(ctx, in.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateToken", err)
	}
	if current.Kind == storage.KindAdmin {
		if err := checkCeiling(caller, current.Type, current.Permissions); err != nil {
			return nil, err
		}
	}
	// Validate the permissions against the type the token will have.
	finalType := current.Type
	if set["type"] {
		finalType = newType
	}
	var perms []string
	if set["permissions"] {
		if perms, err = s.checkPermissions(ctx, &fe, "token.permissions", current.Kind, finalType, in.GetPermissions()); err != nil {
			return nil, s.toStatus(ctx, "UpdateToken", err)
		}
		if err := fe.err(); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	ev := auditEvent(caller, storage.AuditUpdateToken, now)
	ev.TargetID = in.GetId()
	for _, f := range mutableFields {
		if set[f] {
			ev.Fields = append(ev.Fields, f)
		}
	}
	updated, err := s.store.UpdateToken(ctx, in.GetId(), func(t *storage.Token) error {
		// The ceiling holds for the token as it is in this transaction,
		// not only as it was read above.
		if t.Kind == storage.KindAdmin {
			if err := checkCeiling(caller, t.Type, t.Permissions); err != nil {
				return err
			}
		}
		if set["name"] {
			t.Name = name
		}
		if set["description"] {
			t.Description = description
		}
		if set["type"] {
			t.Type = newType
		}
		switch {
		case t.Type != storage.TypeCustom:
			t.Permissions = nil
		case set["permissions"]:
			t.Permissions = perms
		case len(t.Permissions) == 0:
			return invalidField("token.permissions", "a custom token needs at least one permission")
		}
		if set["lifespan"] {
			t.Lifespan = lifespan
			t.ExpireTime = time.Time{}
			if lifespan > 0 {
				t.ExpireTime = now.Add(lifespan)
			}
		}
		if t.Kind == storage.KindAdmin {
			if err := checkCeiling(caller, t.Type, t.Permissions); err != nil {
				return err
			}
		}
		dropEndedGrace(t, now)
		t.UpdateTime = now
		ev.TargetName = t.Name
		return nil
	}, ev)
	if err != nil {
		return nil, s.toStatus(ctx, "UpdateToken", err)
	}
	return &tokendv1.UpdateTokenResponse{Token: s.view(updated)}, nil
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
	target, err := s.checkTargetCeiling(ctx, caller, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, "DeleteToken", err)
	}
	ev := auditEvent(caller, storage.AuditDeleteToken, s.now().UTC())
	ev.TargetID, ev.TargetName = target.ID, target.Name
	// The ceiling is checked again on the token as it is when deleted: it
	// may have gained permissions since the read above.
	check := func(t *storage.Token) error {
		if t.Kind == storage.KindAdmin {
			return checkCeiling(caller, t.Type, t.Permissions)
		}
		return nil
	}
	if err := s.store.DeleteToken(ctx, req.GetId(), check, ev); err != nil {
		return nil, s.toStatus(ctx, "DeleteToken", err)
	}
	return &tokendv1.DeleteTokenResponse{}, nil
}

// checkTargetCeiling applies the ceiling rule to an existing token, which
// it returns.
func (s *Service) checkTargetCeiling(ctx context.Context, caller *entry, id string) (*storage.Token, error) {
	t, err := s.store.GetToken(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Kind == storage.KindAdmin {
		if err := checkCeiling(caller, t.Type, t.Permissions); err != nil {
			return nil, err
		}
	}
	return t, nil
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
	if _, err := s.checkTargetCeiling(ctx, caller, req.GetId()); err != nil {
		return nil, s.toStatus(ctx, "RegenerateToken", err)
	}
	// The secret is drawn once, on the callback's first run (which knows
	// the token's kind), and kept across runs: a retried transaction
	// stores the same secret the caller receives.
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
		if t.Kind == storage.KindAdmin {
			if err := checkCeiling(caller, t.Type, t.Permissions); err != nil {
				return err
			}
		}
		// During a grace period the replaced secret keeps working, but
		// never past its own expiry.
		t.PreviousSecretHash, t.PreviousExpireTime = nil, time.Time{}
		if prevEnd := now.Add(grace); grace > 0 && !expired(t, now) {
			if !t.ExpireTime.IsZero() && t.ExpireTime.Before(prevEnd) {
				prevEnd = t.ExpireTime
			}
			t.PreviousSecretHash, t.PreviousExpireTime = t.SecretHash, prevEnd
		}
		t.SecretHash, t.SecretHint = hashed.SecretHash, hashed.SecretHint
		t.ExpireTime = time.Time{}
		if t.Lifespan > 0 {
			t.ExpireTime = now.Add(t.Lifespan)
		}
		t.UpdateTime = now
		ev.TargetName = t.Name
		return nil
	}, ev)
	if err != nil {
		return nil, s.toStatus(ctx, "RegenerateToken", err)
	}
	return &tokendv1.RegenerateTokenResponse{Token: s.view(updated), Secret: secret}, nil
}
