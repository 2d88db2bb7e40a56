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

// Introspection is the outcome of one introspection. It is a value owned by
// the caller; Token points to an immutable snapshot shared with other calls.
type Introspection struct {
	// Token is the version of the token the secret belongs to, or nil when
	// the secret is not active.
	Token *TokenSnapshot
	// InactiveReason says why the secret is not active; unspecified when it is.
	InactiveReason tokendv1.InactiveReason
	// LastUsed is the token's last use, this call included (zero when
	// inactive). It is kept at a one-second resolution.
	LastUsed time.Time
	// Now is the time the introspection was made at.
	Now time.Time
	// DeniedActions are the actions asked about that the token lacks, in
	// the order asked.
	DeniedActions []string
	// PreviousSecret is true when the secret is the one a rotation
	// replaced, still in its grace period.
	PreviousSecret bool
}

// Allowed reports whether the secret is active and holds every action asked
// about.
func (in *Introspection) Allowed() bool { return in.Token != nil && len(in.DeniedActions) == 0 }

// Response returns the introspection as a new IntrospectTokenResponse.
func (in *Introspection) Response() *tokendv1.IntrospectTokenResponse {
	if in.Token == nil {
		return &tokendv1.IntrospectTokenResponse{InactiveReason: in.InactiveReason}
	}
	return &tokendv1.IntrospectTokenResponse{
		Active:         true,
		Token:          in.Token.View(in.LastUsed, in.Now),
		Allowed:        in.Allowed(),
		DeniedActions:  in.DeniedActions,
		PreviousSecret: in.PreviousSecret,
	}
}

// errIndexStale refuses an introspection while the index may miss a
// revocation: failing closed, the caller retries on another replica.
var errIndexStale = status.Error(codes.Unavailable, "token index may be out of date: the store has not been reachable for too long")

// IntrospectToken implements tokendv1.TokenServiceServer: Introspect, with
// the result as a new message.
func (s *Service) IntrospectToken(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (*tokendv1.IntrospectTokenResponse, error) {
	in, err := s.Introspect(ctx, req)
	if err != nil {
		return nil, err
	}
	return in.Response(), nil
}

// Introspect authorizes an IntrospectToken call (the caller needs
// tokend.token.introspect) and answers it with CheckToken. It reads only
// memory: the index and the caller's grant; last-use times are recorded in
// memory and flushed later. Errors are those of authorization
// (Unauthenticated, PermissionDenied, ResourceExhausted) and of CheckToken.
func (s *Service) Introspect(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (Introspection, error) {
	if _, err := s.authorize(ctx, ActionTokenIntrospect); err != nil {
		return Introspection{}, err
	}
	return s.CheckToken(req.GetToken(), req.GetActions())
}

// CheckToken says whether secret is an active API token and which of
// actions it lacks, and records its use. It authorizes no caller: transports
// that call it decide who may ask. A malformed secret is inactive, never an
// error; it returns InvalidArgument (with a google.rpc.BadRequest naming the
// field) for too many or malformed action ids, and Unavailable while the
// index may miss a revocation (a shared store unreachable for longer than
// Config.MaxStaleness).
func (s *Service) CheckToken(secret string, actions []string) (Introspection, error) {
	if len(actions) > maxActionsPerCall {
		return Introspection{}, invalidField("actions", "at most %d actions per call (got %d)", maxActionsPerCall, len(actions))
	}
	var fe fieldErrors
	for i, a := range actions {
		if msg := checkActionID(a); msg != "" {
			fe.add(fmt.Sprintf("actions[%d]", i), "%s", msg)
		}
	}
	if err := fe.err(); err != nil {
		return Introspection{}, err
	}
	in := Introspection{Now: s.now()}
	if s.stale(in.Now) {
		return Introspection{}, errIndexStale
	}
	e, previous, reason := s.introspect(secret, in.Now)
	if e == nil {
		in.InactiveReason = reason
		return in, nil
	}
	in.Token, in.PreviousSecret, in.LastUsed = &e.meta, previous, e.usage.last()
	for _, action := range actions {
		if !e.grant.allows(action) {
			in.DeniedActions = append(in.DeniedActions, action)
		}
	}
	return in, nil
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
	if e == nil || e.meta.kind != storage.KindAPI {
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
