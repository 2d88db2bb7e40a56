package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
)

// AnyCatalog is a RegisterActions bound no test reaches, for tests about
// something else than the bound.
const AnyCatalog = 1 << 20

// newOwner returns an owner (see storage.Token.IsOwner) derived from name.
func newOwner(name string) *storage.Token {
	t := newToken(name)
	t.Kind, t.Type, t.Permissions = storage.KindAdmin, storage.TypeFullAccess, nil
	t.Lifespan, t.ExpireTime = 0, time.Time{}
	return t
}

// ownerLosses are the writes that take an owner away, as UpdateToken
// modify functions, with a nil one for a deletion.
var ownerLosses = []struct {
	name   string
	modify func(*storage.Token) error
}{
	{"Delete", nil},
	{"Downgrade", func(t *storage.Token) error { t.Type = storage.TypeReadOnly; return nil }},
	{"Expiry", func(t *storage.Token) error {
		t.Lifespan, t.ExpireTime = time.Hour, base.Add(time.Hour)
		return nil
	}},
}

// takeOwner runs one owner loss on the token id.
func takeOwner(ctx context.Context, s storage.Store, id string, modify func(*storage.Token) error) error {
	if modify == nil {
		return s.DeleteToken(ctx, id, nil, nil)
	}
	_, err := s.UpdateToken(ctx, id, modify, nil)
	return err
}

func testLastOwnerKept(t *testing.T, s storage.Store) {
	ctx := context.Background()
	root := newOwner("Root")
	api := newToken("API")
	create(t, s, root, api)
	for _, c := range ownerLosses {
		t.Run(c.name+"Refused", func(t *testing.T) {
			ev := &storage.AuditEvent{Time: base, Operation: storage.AuditUpdateToken, TargetID: root.ID}
			var err error
			if c.modify == nil {
				err = s.DeleteToken(ctx, root.ID, nil, ev)
			} else {
				_, err = s.UpdateToken(ctx, root.ID, c.modify, ev)
			}
			if !errors.Is(err, storage.ErrLastOwner) {
				t.Fatalf("%s of the only owner = %v, want ErrLastOwner", c.name, err)
			}
			wantStored(t, s, root)
			if ev.ID != "" {
				t.Fatalf("the refused write recorded audit event %q", ev.ID)
			}
		})
	}
	t.Run("OtherChangesAllowed", func(t *testing.T) {
		renamed, err := s.UpdateToken(ctx, root.ID, func(t *storage.Token) error { t.Name = "Root renamed"; return nil }, nil)
		if err != nil {
			t.Fatalf("renaming the only owner: %v", err)
		}
		root = renamed
		if err := s.DeleteToken(ctx, api.ID, nil, nil); err != nil {
			t.Fatalf("deleting an API token beside the only owner: %v", err)
		}
	})
	t.Run("RemovableBesideAnother", func(t *testing.T) {
		for _, c := range ownerLosses {
			other := newOwner("Other " + c.name)
			create(t, s, other)
			if err := takeOwner(ctx, s, root.ID, c.modify); err != nil {
				t.Fatalf("%s of an owner beside another: %v", c.name, err)
			}
			// other is the only owner now; root, if it is left,
			// becomes one again.
			if err := takeOwner(ctx, s, other.ID, nil); !errors.Is(err, storage.ErrLastOwner) {
				t.Fatalf("deleting the owner left after %s = %v, want ErrLastOwner", c.name, err)
			}
			if c.modify == nil {
				root = newOwner("Root again")
				create(t, s, root)
			} else if _, err := s.UpdateToken(ctx, root.ID, func(t *storage.Token) error {
				t.Type, t.Lifespan, t.ExpireTime = storage.TypeFullAccess, 0, time.Time{}
				return nil
			}, nil); err != nil {
				t.Fatalf("making %q an owner again: %v", root.ID, err)
			}
			if err := takeOwner(ctx, s, other.ID, nil); err != nil {
				t.Fatalf("deleting an owner once another is made one: %v", err)
			}
		}
	})
}

func testNoOwnerNoRule(t *testing.T, s storage.Store) {
	// A store without any owner (API tokens only, or admin tokens that are
	// not owners) refuses nothing: the rule keeps an owner, it does not
	// make one.
	ctx := context.Background()
	admin := newOwner("Limited")
	admin.Type, admin.Permissions = storage.TypeCustom, []string{"admin::token.find"}
	create(t, s, admin, newToken("API"))
	if err := s.DeleteToken(ctx, admin.ID, nil, nil); err != nil {
		t.Fatalf("deleting a non-owner admin token in a store without owners: %v", err)
	}
	if err := s.DeleteToken(ctx, "id-API", nil, nil); err != nil {
		t.Fatalf("deleting the last API token: %v", err)
	}
}

func testConcurrentOwnerRemovals(t *testing.T, s storage.Store) {
	OwnerRemovalRace(t, s, s)
}

// OwnerRemovalRace makes two owners the only ones, then takes each away at
// the same moment, one through a and one through b (two Store instances on
// one shared store, or the same one twice): exactly one of the two must
// win, and one owner must remain. It runs a few rounds of every kind of
// owner loss, each between the owner left by the last round and a new one.
func OwnerRemovalRace(t *testing.T, a, b storage.Store) {
	ctx := context.Background()
	kept := newOwner("First")
	create(t, a, kept)
	for round := range 3 {
		for _, c := range ownerLosses {
			other := newOwner(fmt.Sprintf("Racer %d %s", round, c.name))
			create(t, a, other)
			pair := []string{kept.ID, other.ID}
			errs := make([]error, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, s := range []storage.Store{a, b} {
				wg.Go(func() {
					<-start
					errs[i] = takeOwner(ctx, s, pair[i], c.modify)
				})
			}
			close(start)
			wg.Wait()
			var left []string
			for i, err := range errs {
				switch {
				case errors.Is(err, storage.ErrLastOwner):
					left = append(left, pair[i])
				case err != nil:
					t.Fatalf("round %d, %s of %q: %v, want nil or ErrLastOwner", round, c.name, pair[i], err)
				}
			}
			if len(left) != 1 {
				t.Fatalf("round %d: %d of two concurrent %s of the only two owners were refused, want 1", round, len(left), c.name)
			}
			owners := 0
			for _, id := range pair {
				if tok, err := a.GetToken(ctx, id); err == nil && tok.IsOwner() {
					owners++
				}
			}
			if owners != 1 {
				t.Fatalf("round %d, %s: %d owners left, want 1", round, c.name, owners)
			}
			if kept.ID != left[0] {
				kept = other
			}
		}
	}
}

func testCatalogCapped(t *testing.T, s storage.Store) {
	ctx := context.Background()
	a := func(id string) storage.Action { return storage.Action{ID: id, Description: "does " + id} }
	if err := s.RegisterActions(ctx, []storage.Action{a("api::a.a.find"), a("api::a.a.create")}, 3, nil); err != nil {
		t.Fatalf("registering 2 of at most 3: %v", err)
	}
	ev := &storage.AuditEvent{Time: base, Operation: storage.AuditRegisterActions}
	err := s.RegisterActions(ctx, []storage.Action{a("api::a.a.find"), a("api::b.b.find"), a("api::c.c.find")}, 3, ev)
	var full *storage.CatalogFullError
	if !errors.As(err, &full) || !errors.Is(err, storage.ErrCatalogFull) {
		t.Fatalf("registering 2 new actions beside 2 of at most 3 = %v, want a CatalogFullError", err)
	}
	if *full != (storage.CatalogFullError{Held: 2, Max: 3, Added: 2}) {
		t.Fatalf("CatalogFullError %+v, want Held 2, Max 3, Added 2", *full)
	}
	if ev.ID != "" {
		t.Fatalf("the refused registration recorded audit event %q", ev.ID)
	}
	wantCatalog := func(want ...string) {
		t.Helper()
		actions, err := s.ListActions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range actions {
			got = append(got, a.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("catalog %v, want %v", got, want)
		}
	}
	wantCatalog("api::a.a.create", "api::a.a.find")
	if err := s.RegisterActions(ctx, []storage.Action{a("api::b.b.find")}, 3, nil); err != nil {
		t.Fatalf("registering the third of at most 3: %v", err)
	}
	changed := a("api::a.a.find")
	changed.Description = "finds a, described anew"
	if err := s.RegisterActions(ctx, []storage.Action{changed, a("api::b.b.find")}, 3, nil); err != nil {
		t.Fatalf("registering known actions again in a full catalog: %v", err)
	}
	if err := s.RegisterActions(ctx, []storage.Action{a("api::d.d.find")}, 3, nil); !errors.Is(err, storage.ErrCatalogFull) {
		t.Fatalf("registering a fourth of at most 3 = %v, want ErrCatalogFull", err)
	}
	wantCatalog("api::a.a.create", "api::a.a.find", "api::b.b.find")
}

func testConcurrentCatalogGrowth(t *testing.T, s storage.Store) {
	CatalogRace(t, s, s)
}

// CatalogRace registers, at the same moment, different new actions through
// a and b (two Store instances on one shared store, or the same one twice)
// into a catalog with room for fewer than all of them: the catalog must end
// at its bound, never past it.
func CatalogRace(t *testing.T, a, b storage.Store) {
	ctx := context.Background()
	const max, racers = 10, 8
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		s := []storage.Store{a, b}[i%2]
		wg.Go(func() {
			<-start
			errs[i] = s.RegisterActions(ctx, []storage.Action{
				{ID: fmt.Sprintf("api::r%d.x.find", i)}, {ID: fmt.Sprintf("api::r%d.x.create", i)},
			}, max, nil)
		})
	}
	close(start)
	wg.Wait()
	wins := winners(t, errs, storage.ErrCatalogFull)
	actions, err := a.ListActions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 2*wins || len(actions) != max {
		t.Fatalf("%d registrations of 2 new actions won and the catalog holds %d, want %d of at most %d", wins, len(actions), max, max)
	}
}
