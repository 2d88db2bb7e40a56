package storage

import (
	"bytes"
	"errors"
	"fmt"
)

// Matches reports whether t passes q's filters (Kind, Type, ExpireBefore);
// every backend's ListTokens applies it, so they filter alike.
func (q ListQuery) Matches(t *Token) bool {
	if q.Kind != 0 && t.Kind != q.Kind {
		return false
	}
	if q.Type != 0 && t.Type != q.Type {
		return false
	}
	if !q.ExpireBefore.IsZero() && (t.ExpireTime.IsZero() || !t.ExpireTime.Before(q.ExpireBefore)) {
		return false
	}
	return true
}

// IsOwner reports whether t is an owner: an unlimited full-access admin
// token (no lifespan, no expiry). A store always keeps one once it has one:
// without an owner nobody could administer tokend, so every backend refuses
// a write that would remove the last (ErrLastOwner).
func (t *Token) IsOwner() bool {
	return t.Kind == KindAdmin && t.Type == TypeFullAccess && t.Lifespan == 0 && t.ExpireTime.IsZero()
}

// CheckKeys returns an error if t cannot be stored under its keys: it
// needs an id, a name and a secret hash, and a previous hash other than the
// current one (one index entry cannot stand for both: deleting one would
// delete the other), which is an error wrapping ErrHashTaken.
func CheckKeys(t *Token) error {
	switch {
	case t == nil:
		return errors.New("nil token")
	case t.ID == "":
		return errors.New("empty token id")
	case t.Name == "":
		return fmt.Errorf("token %q: empty name", t.ID)
	case len(t.SecretHash) == 0:
		return fmt.Errorf("token %q: empty secret hash", t.ID)
	case bytes.Equal(t.SecretHash, t.PreviousSecretHash):
		return fmt.Errorf("token %q: previous secret hash equals the current one: %w", t.ID, ErrHashTaken)
	}
	return nil
}
