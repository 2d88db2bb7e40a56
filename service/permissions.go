package service

import (
	"strings"

	"github.com/tokend/tokend/internal/actionid"
	"github.com/tokend/tokend/storage"
)

// The built-in admin actions: every RPC requires one of them. They follow the
// API actions' grammar so the same type rules apply (read-only = find and
// findOne).
const (
	ActionTokenFind       = "tokend.token.find"
	ActionTokenFindOne    = "tokend.token.findOne"
	ActionTokenCreate     = "tokend.token.create"
	ActionTokenUpdate     = "tokend.token.update"
	ActionTokenDelete     = "tokend.token.delete"
	ActionTokenRegenerate = "tokend.token.regenerate"
	ActionTokenIntrospect = "tokend.token.introspect"
	ActionActionFind      = "tokend.action.find"
	ActionActionRegister  = "tokend.action.register"
	ActionAuditFind       = "tokend.audit.find"
)

// reservedSubjectPrefix starts the subject of every admin action; API actions
// may not use it, so the two catalogs never overlap.
const reservedSubjectPrefix = "tokend."

// AdminActions is the built-in admin catalog with descriptions, ordered by id.
var AdminActions = []storage.Action{
	{ID: ActionActionFind, Description: "List the action catalogs"},
	{ID: ActionActionRegister, Description: "Register API actions"},
	{ID: ActionAuditFind, Description: "Read the audit trail"},
	{ID: ActionTokenCreate, Description: "Create tokens"},
	{ID: ActionTokenDelete, Description: "Delete tokens"},
	{ID: ActionTokenFind, Description: "List tokens"},
	{ID: ActionTokenFindOne, Description: "Read one token"},
	{ID: ActionTokenIntrospect, Description: "Introspect API tokens"},
	{ID: ActionTokenRegenerate, Description: "Regenerate token secrets"},
	{ID: ActionTokenUpdate, Description: "Edit tokens"},
}

var adminActionSet = func() map[string]bool {
	m := make(map[string]bool, len(AdminActions))
	for _, a := range AdminActions {
		m[a.ID] = true
	}
	return m
}()

// checkActionID reports what is wrong with an action id, or "" when it is
// well formed (see internal/actionid).
func checkActionID(id string) string { return actionid.Problem(id) }

// splitAction returns an action's subject and verb.
func splitAction(id string) (subject, verb string) {
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return "", id
	}
	return id[:i], id[i+1:]
}

func isReadVerb(action string) bool {
	_, verb := splitAction(action)
	return verb == "find" || verb == "findOne"
}

// grant is what a token allows, precomputed once per token version so that a
// permission check is a switch and at most one map lookup.
type grant struct {
	typ    storage.Type
	custom map[string]struct{} // custom type only
}

func newGrant(t *storage.Token) grant {
	g := grant{typ: t.Type}
	if t.Type == storage.TypeCustom {
		g.custom = make(map[string]struct{}, len(t.Permissions))
		for _, p := range t.Permissions {
			g.custom[p] = struct{}{}
		}
	}
	return g
}

// allows reports whether the grant permits action. The caller has checked the
// action's grammar.
func (g grant) allows(action string) bool {
	switch g.typ {
	case storage.TypeFullAccess:
		return true
	case storage.TypeReadOnly:
		return isReadVerb(action)
	case storage.TypeCustom:
		_, ok := g.custom[action]
		return ok
	}
	return false
}

// adminActionsHeld lists the admin actions an admin token of this type and
// these permissions would hold.
func adminActionsHeld(typ storage.Type, perms []string) []string {
	g := newGrant(&storage.Token{Type: typ, Permissions: perms})
	var held []string
	for _, a := range AdminActions {
		if g.allows(a.ID) {
			held = append(held, a.ID)
		}
	}
	return held
}
