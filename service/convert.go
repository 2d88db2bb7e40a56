package service

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// tokenView is the API form of a stored token at now; lastUsed is the later
// of the stored and in-memory last-use times. A zero now keeps every
// time-dependent field (the index builds views once per version and
// settles them per call in withLastUsed).
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
	if !t.PreviousExpireTime.IsZero() && (now.IsZero() || now.Before(t.PreviousExpireTime)) {
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

// viewAt returns the entry's API view at now, with its current last use.
// The view is shared by concurrent responses, which only read it.
func (e *entry) viewAt(now time.Time) *tokendv1.Token {
	last := e.usage.lastUsed.Load()
	grace := e.inGrace(now)
	vs := e.viewsOnce()
	c := vs.cached.Load()
	if c != nil && c.grace == grace && c.lastUsed == last {
		return c.view
	}
	var base *tokendv1.Token
	if c != nil && c.grace == grace {
		base = c.base
	} else {
		t := e.token()
		t.LastUsedTime = time.Time{}
		base = tokenView(t, time.Time{}, now)
	}
	// Only the last use changed (for a token used less than once a
	// second, on every call): copy the base rather than rebuild it.
	v := &tokendv1.Token{
		Id:                       base.Id,
		Name:                     base.Name,
		Description:              base.Description,
		Kind:                     base.Kind,
		Type:                     base.Type,
		Permissions:              base.Permissions,
		Lifespan:                 base.Lifespan,
		ExpireTime:               base.ExpireTime,
		CreateTime:               base.CreateTime,
		UpdateTime:               base.UpdateTime,
		SecretHint:               base.SecretHint,
		PreviousSecretExpireTime: base.PreviousSecretExpireTime,
	}
	if last != 0 {
		v.LastUsedTime = timestamppb.New(time.Unix(0, last).UTC())
	}
	vs.cached.Store(&cachedView{grace: grace, base: base, lastUsed: last, view: v})
	return v
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
