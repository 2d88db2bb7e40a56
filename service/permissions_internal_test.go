package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
			t.Errorf("the admin catalog lacks %s", a)
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
	// Read-only holds exactly the find and findOne verbs: of the built-in
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

func TestGuardCeiling(t *testing.T) {
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
	g := &guard{caller: caller}
	for _, c := range cases {
		err := g.may(&storage.Token{Kind: storage.KindAdmin, Type: c.typ, Permissions: c.perms})
		if (err == nil) != c.ok {
			t.Errorf("%s: may = %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "tokend.token.") {
			t.Errorf("%s: %q does not name the missing permission", c.name, err)
		}
		// API tokens are not bound by the admin ceiling.
		if err := g.may(&storage.Token{Kind: storage.KindAPI, Type: c.typ, Permissions: c.perms}); err != nil {
			t.Errorf("%s: API token refused: %v", c.name, err)
		}
	}
}

func TestGuardTimeCeiling(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	limited := &entry{grant: grant{typ: storage.TypeFullAccess}, expire: now.Add(7 * 24 * time.Hour).UnixNano()}
	unlimited := &entry{grant: grant{typ: storage.TypeFullAccess}}
	cases := []struct {
		name   string
		caller *entry
		kind   storage.Kind
		expire time.Time
		ok     bool
	}{
		{"LimitedCallerUnlimitedAdmin", limited, storage.KindAdmin, time.Time{}, false},
		{"LimitedCallerLaterAdmin", limited, storage.KindAdmin, now.Add(8 * 24 * time.Hour), false},
		{"LimitedCallerSameExpiry", limited, storage.KindAdmin, now.Add(7 * 24 * time.Hour), true},
		{"LimitedCallerEarlierAdmin", limited, storage.KindAdmin, now.Add(24 * time.Hour), true},
		{"LimitedCallerUnlimitedAPI", limited, storage.KindAPI, time.Time{}, true},
		{"UnlimitedCallerUnlimitedAdmin", unlimited, storage.KindAdmin, time.Time{}, true},
	}
	for _, c := range cases {
		err := (&guard{caller: c.caller}).may(&storage.Token{Kind: c.kind, Type: storage.TypeFullAccess, ExpireTime: c.expire})
		if (err == nil) != c.ok {
			t.Errorf("%s: may = %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && (status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "outlive")) {
			t.Errorf("%s: %v, want PermissionDenied saying the token may not outlive its caller", c.name, err)
		}
	}
}

func TestGuardLastOwner(t *testing.T) {
	owner := &storage.Token{Name: "Root", Kind: storage.KindAdmin, Type: storage.TypeFullAccess}
	downgraded := owner.Clone()
	downgraded.Type = storage.TypeReadOnly
	expiring := owner.Clone()
	expiring.Lifespan, expiring.ExpireTime = time.Hour, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	renamed := owner.Clone()
	renamed.Name = "Root 2"
	root := &entry{grant: grant{typ: storage.TypeFullAccess}}
	// The store refuses the write; the guard words the refusal.
	refused := fmt.Errorf("update token: token \"x\": %w", storage.ErrLastOwner)
	for _, c := range []struct {
		name  string
		after *storage.Token
		loss  string // "" when the write keeps the owner
	}{
		{"Delete", nil, "deleting it"},
		{"Downgrade", downgraded, "changing its type"},
		{"Expiry", expiring, "giving it an expiry"},
		{"Rename", renamed, ""},
	} {
		g := &guard{caller: root}
		if err := g.check(owner, c.after); err != nil {
			t.Fatalf("%s: check = %v; the store, not the guard, refuses taking the last owner away", c.name, err)
		}
		err := (&Service{}).toStatus(context.Background(), "test", g.explain(refused))
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("%s: %v, want FailedPrecondition", c.name, err)
		}
		msg := status.Convert(err).Message()
		if !strings.Contains(msg, "last unlimited full-access admin token") && !strings.Contains(msg, "no unlimited full-access admin token") {
			t.Errorf("%s: %q does not say the write would take away the last owner", c.name, msg)
		}
		if c.loss != "" && (!strings.Contains(msg, c.loss) || !strings.Contains(msg, `"Root"`)) {
			t.Errorf("%s: %q does not name the token and say %q", c.name, msg, c.loss)
		}
	}
}
