package service

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// tokenView is the API form of a stored token at now; lastUsed is the later
// of the stored and in-memory last-use times. The previous secret's expiry
// shows only while it is valid at now.
func tokenView(t *storage.Token, lastUsed, now time.Time) *tokendv1.Token {
	v := &tokendv1.Token{
		Id:          t.ID,
		Name:        t.Name,
		Description: t.Description,
		Kind:        kindToAPI(t.Kind),
		Type:        typeToAPI(t.Type),
		Permissions: append([]string(nil), t.Permissions...),
		CreateTime:  timestamppb.New(t.CreateTime),
		UpdateTime:  timestamppb.New(t.UpdateTime),
		SecretHint:  t.SecretHint,
	}
	if t.Lifespan > 0 {
		v.Lifespan = durationpb.New(t.Lifespan)
	}
	if !t.ExpireTime.IsZero() {
		v.ExpireTime = timestamppb.New(t.ExpireTime)
	}
	if !t.PreviousExpireTime.IsZero() && now.Before(t.PreviousExpireTime) {
		v.PreviousSecretExpireTime = timestamppb.New(t.PreviousExpireTime)
	}
	if t.LastUsedTime.After(lastUsed) {
		lastUsed = t.LastUsedTime
	}
	if !lastUsed.IsZero() {
		v.LastUsedTime = timestamppb.New(lastUsed)
	}
	return v
}

// TokenSnapshot is one version of a token as the API shows it, without its
// secret hashes and its last use (which changes without a new version). It
// is immutable, and shared by every caller that sees that version: a new
// version of the token (an edit, a regeneration) is a new snapshot, so a
// transport may cache what it derives from one for as long as it holds it.
// The index keeps one per token, so times are unix nanoseconds (0 = unset):
// time.Time fields would double what each costs.
type TokenSnapshot struct {
	// kind and typ come first: the index's entry embeds its snapshot right
	// after the fields a lookup reads, and a lookup reads these too.
	kind                        storage.Kind
	typ                         storage.Type
	id, name, description, hint string
	permissions                 []string
	lifespan                    time.Duration
	expire, prevExpire          int64
	create, update              int64
}

func newSnapshot(t *storage.Token) TokenSnapshot {
	return TokenSnapshot{
		id: t.ID, name: t.Name, description: t.Description, hint: t.SecretHint,
		kind: t.Kind, typ: t.Type, permissions: t.Permissions, lifespan: t.Lifespan,
		expire: nanos(t.ExpireTime), prevExpire: nanos(t.PreviousExpireTime),
		create: nanos(t.CreateTime), update: nanos(t.UpdateTime),
	}
}

// ID returns the token's id.
func (t *TokenSnapshot) ID() string { return t.id }

// Name returns the token's name.
func (t *TokenSnapshot) Name() string { return t.name }

// Kind returns the token's kind as the API names it.
func (t *TokenSnapshot) Kind() tokendv1.TokenKind { return kindToAPI(t.kind) }

// Type returns the token's type as the API names it.
func (t *TokenSnapshot) Type() tokendv1.TokenType { return typeToAPI(t.typ) }

// InGrace reports whether the token's previous secret is still valid at now,
// which is when its API view shows previous_secret_expire_time.
func (t *TokenSnapshot) InGrace(now time.Time) bool {
	return t.prevExpire != 0 && now.UnixNano() < t.prevExpire
}

// View returns a new API form of the token at now, last used at lastUsed
// (zero: never).
func (t *TokenSnapshot) View(lastUsed, now time.Time) *tokendv1.Token {
	return tokenView(&storage.Token{
		ID: t.id, Name: t.name, Description: t.description, Kind: t.kind, Type: t.typ,
		Permissions: t.permissions, Lifespan: t.lifespan, SecretHint: t.hint,
		ExpireTime: fromNanos(t.expire), PreviousExpireTime: fromNanos(t.prevExpire),
		CreateTime: fromNanos(t.create), UpdateTime: fromNanos(t.update),
	}, lastUsed, now)
}

func kindToAPI(k storage.Kind) tokendv1.TokenKind {
	switch k {
	case storage.KindAPI:
		return tokendv1.TokenKind_TOKEN_KIND_API
	case storage.KindAdmin:
		return tokendv1.TokenKind_TOKEN_KIND_ADMIN
	}
	return tokendv1.TokenKind_TOKEN_KIND_UNSPECIFIED
}

func typeToAPI(t storage.Type) tokendv1.TokenType {
	switch t {
	case storage.TypeReadOnly:
		return tokendv1.TokenType_TOKEN_TYPE_READ_ONLY
	case storage.TypeFullAccess:
		return tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS
	case storage.TypeCustom:
		return tokendv1.TokenType_TOKEN_TYPE_CUSTOM
	}
	return tokendv1.TokenType_TOKEN_TYPE_UNSPECIFIED
}

// kindFromAPI maps an API kind; ok is false for values outside the enum.
// Unspecified maps to 0, which callers read as "default" or "any".
func kindFromAPI(k tokendv1.TokenKind) (storage.Kind, bool) {
	switch k {
	case tokendv1.TokenKind_TOKEN_KIND_UNSPECIFIED:
		return 0, true
	case tokendv1.TokenKind_TOKEN_KIND_API:
		return storage.KindAPI, true
	case tokendv1.TokenKind_TOKEN_KIND_ADMIN:
		return storage.KindAdmin, true
	}
	return 0, false
}

func typeFromAPI(t tokendv1.TokenType) (storage.Type, bool) {
	switch t {
	case tokendv1.TokenType_TOKEN_TYPE_UNSPECIFIED:
		return 0, true
	case tokendv1.TokenType_TOKEN_TYPE_READ_ONLY:
		return storage.TypeReadOnly, true
	case tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS:
		return storage.TypeFullAccess, true
	case tokendv1.TokenType_TOKEN_TYPE_CUSTOM:
		return storage.TypeCustom, true
	}
	return 0, false
}

func actionView(a storage.Action) *tokendv1.Action {
	subject, verb := splitAction(a.ID)
	return &tokendv1.Action{Id: a.ID, Description: a.Description, Subject: subject, Verb: verb}
}
