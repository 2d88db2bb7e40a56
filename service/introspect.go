package service

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// IntrospectToken implements tokendv1.TokenServiceServer. It reads only
// memory: the index and the caller's grant; last-use times are recorded in
// memory and flushed later.
func (s *Service) IntrospectToken(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (*tokendv1.IntrospectTokenResponse, error) {
	a, err := s.introspectCall(ctx, req)
	if err != nil {
		return nil, err
	}
	if a.entry == nil {
		return &tokendv1.IntrospectTokenResponse{InactiveReason: a.reason}, nil
	}
	return &tokendv1.IntrospectTokenResponse{
		Active:         true,
		Token:          a.entry.viewAt(a.now),
		Allowed:        len(a.denied) == 0,
		DeniedActions:  a.denied,
		PreviousSecret: a.previous,
	}, nil
}

// errIndexStale refuses an introspection while the index may miss a
// revocation: failing closed, the caller retries on another replica.
var errIndexStale = status.Error(codes.Unavailable, "token index may be out of date: the store has not been reachable for too long")

// answer is the outcome of an introspection, before it is put in a message.
type answer struct {
	now      time.Time
	entry    *entry // nil when inactive
	reason   tokendv1.InactiveReason
	previous bool
	denied   []string
}

// introspectCall authorizes an IntrospectToken call, checks its actions and
// answers it.
func (s *Service) introspectCall(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (answer, error) {
	if _, err := s.authorize(ctx, ActionTokenIntrospect); err != nil {
		return answer{}, err
	}
	actions := req.GetActions()
	if len(actions) > maxActionsPerCall {
		return answer{}, invalidField("actions", "at most %d actions per call (got %d)", maxActionsPerCall, len(actions))
	}
	var fe fieldErrors
	for i, a := range actions {
		if msg := checkActionID(a); msg != "" {
			fe.add(fmt.Sprintf("actions[%d]", i), "%s", msg)
		}
	}
	if err := fe.err(); err != nil {
		return answer{}, err
	}
	a := answer{now: s.now()}
	if s.stale(a.now) {
		return answer{}, errIndexStale
	}
	a.entry, a.previous, a.reason = s.introspect(req.GetToken(), a.now)
	if a.entry == nil {
		return a, nil
	}
	for _, action := range actions {
		if !a.entry.grant.allows(action) {
			a.denied = append(a.denied, action)
		}
	}
	return a, nil
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
