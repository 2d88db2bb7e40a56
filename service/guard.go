package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/storage"
)

// guard holds the rules every write to an admin token obeys. A write checks
// the token as it is before the change and as it will be after, with the same
// guard, inside the write's transaction (and may check the token as first read
// earlier, to refuse before doing any work):
//
//   - The ceiling: the caller may not create, edit, regenerate or delete an
//     admin token that holds an admin action the caller lacks, or that expires
//     later than the caller's own credential (an unlimited caller is
//     unlimited). Otherwise a limited admin could mint, or take over, a
//     stronger or longer-lived credential. API tokens are not capped.
//   - The last owner: the store always keeps an unlimited full-access admin
//     token (an owner). A write that would delete the last one, downgrade its
//     type or give it an expiry is refused: nobody could administer tokend
//     afterwards.
type guard struct {
	caller *entry // nil for offline writes (recovery), which the ceiling does not bind
	// otherOwner reports that an owner other than the target exists. It is
	// only read when the write takes an owner away, and is computed under
	// Service.adminWrites, which every write to an existing admin token
	// holds, so no write of this process can make it stale before the
	// write commits. Replicas sharing an etcd store do not share that lock:
	// two of them each taking away a different owner at the same moment can
	// both pass (tokend recover-root then mints a new owner).
	otherOwner bool
}

// isOwner reports whether t is an unlimited full-access admin token.
func isOwner(t *storage.Token) bool {
	return t.Kind == storage.KindAdmin && t.Type == storage.TypeFullAccess && t.Lifespan == 0 && t.ExpireTime.IsZero()
}

// may applies the ceiling to one state of a token. It returns
// PermissionDenied naming what the caller lacks.
func (g *guard) may(t *storage.Token) error {
	if t == nil || t.Kind != storage.KindAdmin || g.caller == nil {
		return nil
	}
	var missing []string
	for _, a := range adminActionsHeld(t.Type, t.Permissions) {
		if !g.caller.grant.allows(a) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return status.Errorf(codes.PermissionDenied,
			"an admin token may not hold permissions its creator or editor lacks; your credential lacks %s",
			strings.Join(missing, ", "))
	}
	if g.caller.expire == 0 {
		return nil
	}
	callerEnd := time.Unix(0, g.caller.expire).UTC()
	if t.ExpireTime.IsZero() || t.ExpireTime.After(callerEnd) {
		end := "never expires"
		if !t.ExpireTime.IsZero() {
			end = "expires at " + t.ExpireTime.UTC().Format(time.RFC3339)
		}
		return status.Errorf(codes.PermissionDenied,
			"an admin token may not outlive the credential that creates, edits, regenerates or deletes it: yours expires at %s, the token %s",
			callerEnd.Format(time.RFC3339), end)
	}
	return nil
}

// check applies every rule to a write that turns before into after; before
// is nil for a creation, after nil for a deletion. It returns
// PermissionDenied for the ceiling and FailedPrecondition for the last owner.
func (g *guard) check(before, after *storage.Token) error {
	if err := g.may(before); err != nil {
		return err
	}
	if err := g.may(after); err != nil {
		return err
	}
	if before == nil || !isOwner(before) || g.otherOwner {
		return nil
	}
	var what string
	switch {
	case after == nil:
		what = "deleting it"
	case after.Type != storage.TypeFullAccess:
		what = "changing its type"
	case !isOwner(after):
		what = "giving it an expiry"
	default:
		return nil
	}
	return status.Errorf(codes.FailedPrecondition,
		"%q is the last unlimited full-access admin token: %s would leave nobody able to administer tokend; create another such token first (offline: tokend recover-root)",
		before.Name, what)
}

// guardFor returns the guard of a write by caller to target as read before
// the write. For an existing admin token it takes Service.adminWrites, so
// that this process's writes to admin tokens commit one at a time and the
// last-owner count stays true until the write commits (see guard.otherOwner
// for replicas); release must be called when the write is done.
func (s *Service) guardFor(ctx context.Context, caller *entry, target *storage.Token) (g *guard, release func(), err error) {
	g = &guard{caller: caller}
	if target == nil || target.Kind != storage.KindAdmin {
		return g, func() {}, nil
	}
	s.adminWrites.Lock()
	if g.otherOwner, err = s.ownerOtherThan(ctx, target.ID); err != nil {
		s.adminWrites.Unlock()
		return nil, nil, err
	}
	return g, s.adminWrites.Unlock, nil
}

// ownerOtherThan reports whether an owner other than the token id exists.
func (s *Service) ownerOtherThan(ctx context.Context, id string) (bool, error) {
	q := storage.ListQuery{Kind: storage.KindAdmin, Type: storage.TypeFullAccess, Limit: maxPageSize}
	for {
		page, err := s.store.ListTokens(ctx, q)
		if err != nil {
			return false, fmt.Errorf("count owners: %w", err)
		}
		for _, t := range page.Tokens {
			if t.ID != id && isOwner(t) {
				return true, nil
			}
		}
		if page.Next == "" {
			return false, nil
		}
		q.After = page.Next
	}
}
