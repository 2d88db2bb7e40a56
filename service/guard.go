package service

import (
	"errors"
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
//   - The last owner: the store always keeps an owner (storage.Token.IsOwner:
//     an unlimited full-access admin token). The store itself refuses a write
//     that would delete the last one, downgrade its type or give it an expiry
//     (storage.ErrLastOwner), inside the write's transaction, so replicas
//     sharing a store cannot together remove every owner; the guard only
//     remembers what the write would have done to the owner, to explain the
//     refusal (see explain).
type guard struct {
	caller *entry // nil for offline writes (recovery), which the ceiling does not bind
	// ownerLoss describes how the last write checked takes an owner away
	// ("deleting it"), with the owner's name; empty when it does not.
	ownerLoss, ownerName string
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

// check applies the ceiling to a write that turns before into after; before
// is nil for a creation, after nil for a deletion. It returns
// PermissionDenied, and notes whether the write takes an owner away.
func (g *guard) check(before, after *storage.Token) error {
	if err := g.may(before); err != nil {
		return err
	}
	if err := g.may(after); err != nil {
		return err
	}
	g.ownerLoss, g.ownerName = "", ""
	if before == nil || !before.IsOwner() {
		return nil
	}
	switch {
	case after == nil:
		g.ownerLoss = "deleting it"
	case after.Type != storage.TypeFullAccess:
		g.ownerLoss = "changing its type"
	case !after.IsOwner():
		g.ownerLoss = "giving it an expiry"
	default:
		return nil
	}
	g.ownerName = before.Name
	return nil
}

// explain returns err, the error of a write checked by g, with what the
// write would have done to the owner attached when the store refused it
// for taking the last owner away (see lastOwnerError).
func (g *guard) explain(err error) error {
	if g.ownerLoss == "" || !errors.Is(err, storage.ErrLastOwner) {
		return err
	}
	return &lastOwnerError{name: g.ownerName, loss: g.ownerLoss, err: err}
}

// lastOwnerError is a storage.ErrLastOwner refusal with what the caller
// tried; toStatus words it for the caller.
type lastOwnerError struct {
	name, loss string
	err        error
}

func (e *lastOwnerError) Error() string { return e.err.Error() }
func (e *lastOwnerError) Unwrap() error { return e.err }

// reason is the refusal as the caller reads it.
func (e *lastOwnerError) reason() string {
	return fmt.Sprintf("%q is the last unlimited full-access admin token: %s would leave nobody able to administer tokend; create another such token first (offline: tokend recover-root)",
		e.name, e.loss)
}
