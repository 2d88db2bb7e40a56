package service

import (
	"slices"
	"strings"
	"testing"

	"github.com/tokend/tokend/storage"
)

func TestCheckActionID(t *testing.T) {
	valid := []string{
		"x.find",
		"api::article.article.find",
		"plugin::users-permissions.user.me",
		"a_b.c-d:e.F9",
		"a." + strings.Repeat("b", 198), // 200 characters
		"tokend.token.find",             // well formed; reserved only for registration
	}
	for _, id := range valid {
		if msg := checkActionID(id); msg != "" {
			t.Errorf("checkActionID(%q) = %q, want valid", id, msg)
		}
	}
	invalid := map[string]string{
		"Empty":         "",
		"NoDot":         "find",
		"LeadingDot":    ".find",
		"TrailingDot":   "x.find.",
		"DoubleDot":     "x..find",
		"OnlyDot":       ".",
		"Space":         "x. find",
		"Slash":         "x/y.find",
		"Star":          "x.*",
		"NonASCII":      "ä.find",
		"NUL":           "x.fi\x00nd",
		"201Characters": "a." + strings.Repeat("b", 199),
	}
	for name, id := range invalid {
		t.Run(name, func(t *testing.T) {
			if msg := checkActionID(id); msg == "" {
				t.Errorf("checkActionID(%q) accepted", id)
			}
		})
	}
}

func TestSplitAction(t *testing.T) {
	for id, want := range map[string][2]string{
		"x.find":                    {"x", "find"},
		"api::article.article.find": {"api::article.article", "find"},
		"tokend.token.findOne":      {"tokend.token", "findOne"},
	} {
		if s, v := splitAction(id); s != want[0] || v != want[1] {
			t.Errorf("splitAction(%q) = %q, %q; want %q, %q", id, s, v, want[0], want[1])
		}
	}
}

func TestGrantAllows(t *testing.T) {
	actions := []string{"x.find", "x.findOne", "x.findMany", "x.create", "x.FindOne", "a.b.c.findOne", "tokend.token.delete"}
	cases := []struct {
		name    string
		tok     storage.Token
		allowed []string
	}{
		{"ReadOnly", storage.Token{Type: storage.TypeReadOnly}, []string{"x.find", "x.findOne", "a.b.c.findOne"}},
		{"FullAccess", storage.Token{Type: storage.TypeFullAccess}, actions},
		{"Custom", storage.Token{Type: storage.TypeCustom, Permissions: []string{"x.create", "x.findMany"}}, []string{"x.findMany", "x.create"}},
		{"CustomEmpty", storage.Token{Type: storage.TypeCustom}, nil},
		{"UnknownType", storage.Token{Type: 0, Permissions: []string{"x.find"}}, nil},
		// Permissions of a non-custom type are ignored.
		{"ReadOnlyWithPermissions", storage.Token{Type: storage.TypeReadOnly, Permissions: []string{"x.create"}}, []string{"x.find", "x.findOne", "a.b.c.findOne"}},
	}
	for _, c := range cases {
		g := newGrant(&c.tok)
		for _, a := range actions {
			if got, want := g.allows(a), slices.Contains(c.allowed, a); got != want {
				t.Errorf("%s: allows(%q) = %v, want %v", c.name, a, got, want)
			}
		}
	}
}

func TestAdminActionsHeld(t *testing.T) {
	var all []string
	for _, a := range AdminActions {
		all = append(all, a.ID)
	}
	spec := []string{
		"tokend.token.find", "tokend.token.findOne", "tokend.token.create", "tokend.token.update",
		"tokend.token.delete", "tokend.token.regenerate", "tokend.token.introspect",
		"tokend.action.find", "tokend.action.register",
	}
	for _, a := range spec {
		if !slices.Contains(all, a) {
			t.Errorf("the admin catalog lacks %s (SPEC §2)", a)
		}
	}
	if !slices.IsSorted(all) {
		t.Errorf("AdminActions is not ordered by id: %q", all)
	}
	for _, a := range all {
		if !strings.HasPrefix(a, reservedSubjectPrefix) || checkActionID(a) != "" {
			t.Errorf("admin action %q: want a well-formed id under %q", a, reservedSubjectPrefix)
		}
	}
	// Read-only holds exactly the find and findOne verbs: of SPEC §2's
	// catalog, tokend.token.find, tokend.token.findOne and tokend.action.find.
	readOnly := adminActionsHeld(storage.TypeReadOnly, nil)
	var want []string
	for _, a := range all {
		if _, verb := splitAction(a); verb == "find" || verb == "findOne" {
			want = append(want, a)
		}
	}
	if !slices.Equal(readOnly, want) {
		t.Errorf("a read-only admin token holds %q, want %q", readOnly, want)
	}
	for _, a := range []string{"tokend.action.find", "tokend.token.find", "tokend.token.findOne"} {
		if !slices.Contains(readOnly, a) {
			t.Errorf("a read-only admin token lacks %s", a)
		}
	}
	if full := adminActionsHeld(storage.TypeFullAccess, nil); !slices.Equal(full, all) {
		t.Errorf("a full-access admin token holds %q, want every admin action", full)
	}
	if got := adminActionsHeld(storage.TypeCustom, []string{"tokend.token.create", "x.find"}); !slices.Equal(got, []string{"tokend.token.create"}) {
		t.Errorf("custom [create, x.find] holds %q", got)
	}
}

func TestCheckCeiling(t *testing.T) {
	caller := &entry{grant: newGrant(&storage.Token{Type: storage.TypeCustom, Permissions: []string{ActionTokenCreate, ActionTokenFind}})}
	cases := []struct {
		name  string
		typ   storage.Type
		perms []string
		ok    bool
	}{
		{"FullAccess", storage.TypeFullAccess, nil, false},
		{"ReadOnly", storage.TypeReadOnly, nil, false},
		{"Subset", storage.TypeCustom, []string{ActionTokenFind}, true},
		{"Same", storage.TypeCustom, []string{ActionTokenCreate, ActionTokenFind}, true},
		{"More", storage.TypeCustom, []string{ActionTokenCreate, ActionTokenDelete}, false},
	}
	for _, c := range cases {
		err := checkCeiling(caller, c.typ, c.perms)
		if (err == nil) != c.ok {
			t.Errorf("%s: checkCeiling = %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "tokend.token.") {
			t.Errorf("%s: %q does not name the missing permission", c.name, err)
		}
	}
}
