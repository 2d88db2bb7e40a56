package service

import (
	"context"
	"fmt"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// IntrospectToken implements tokendv1.TokenServiceServer. It reads only
// memory: the index and the caller's grant; last-use times are recorded in
// memory and flushed later.
func (s *Service) IntrospectToken(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (*tokendv1.IntrospectTokenResponse, error) {
	if _, err := s.authorize(ctx, ActionTokenIntrospect); err != nil {
		return nil, err
	}
	actions := req.GetActions()
	if len(actions) > maxActionsPerCall {
		return nil, invalidField("actions", "at most %d actions per call (got %d)", maxActionsPerCall, len(actions))
	}
	var fe fieldErrors
	for i, a := range actions {
		if msg := checkActionID(a); msg != "" {
			fe.add(fmt.Sprintf("actions[%d]", i), "%s", msg)
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	now := s.now()
	e, previous, reason := s.introspect(req.GetToken(), now)
	if e == nil {
		return &tokendv1.IntrospectTokenResponse{InactiveReason: reason}, nil
	}
	resp := &tokendv1.IntrospectTokenResponse{Active: true, Token: e.viewAt(now), Allowed: true, PreviousSecret: previous}
	for _, a := range actions {
		if !e.grant.allows(a) {
			resp.Allowed = false
			resp.DeniedActions = append(resp.DeniedActions, a)
		}
	}
	return resp, nil
}

// introspect finds the active API token with this secret and records its
// use, or says why there is none; previous is true when the secret is the
// one a rotation replaced, still in its grace period. A malformed string is
// refused before any hashing or lookup.
func (s *Service) introspect(secret string, now time.Time) (e *entry, previous bool, reason tokendv1.InactiveReason) {
	kind, ok := s.secrets.parse(secret)
	if !ok {
		return nil, false, tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED
	}
	if kind != storage.KindAPI {
		return nil, false, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND
	}
	e, h := s.find(secret)
	if e == nil || e.kind != storage.KindAPI {
		return nil, false, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND
	}
	valid, previous := e.matches(&h, now)
	if !valid {
		if previous {
			// A previous secret past its grace period is simply gone.
			return nil, false, tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND
		}
		return nil, false, tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED
	}
	e.usage.touch(now)
	return e, previous, tokendv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED
}
