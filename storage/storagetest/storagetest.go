package storagetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
)

// Run runs the conformance suite against the backend that open creates.
// open is called once per subtest and must return a new, empty store that
// is closed when t ends (t.Cleanup; a Close error wrapping storage.ErrClosed
// must be ignored there, since some subtests close the store themselves).
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Store)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CallerOwnsValues", testCallerOwnsValues},
		{"NotFound", testNotFound},
		{"CreateConflicts", testCreateConflicts},
		{"UpdateConflicts", testUpdateConflicts},
		{"RenameToOwnNameOtherCase", testRenameOwnNameOtherCase},
		{"UpdateModifyError", testUpdateModifyError},
		{"UpdateImmutableFields", testUpdateImmutableFields},
		{"UpdateMovesIndexes", testUpdateMovesIndexes},
		{"DeleteFreesNameAndHash", testDeleteFreesNameAndHash},
		{"DeleteCheckRefuses", testDeleteCheckRefuses},
		{"PreviousHashIndexed", testPreviousHashIndexed},
		{"PreviousHashMovesWithRegeneration", testPreviousHashMoves},
		{"DeleteFreesBothHashes", testDeleteFreesBothHashes},
		{"ConcurrentCreateSameName", testConcurrentCreateSameName},
		{"ListPagination", testListPagination},
		{"ListStableAcrossChanges", testListStableAcrossChanges},
		{"ListFilters", testListFilters},
		{"ListBadCursor", testListBadCursor},
		{"ListLimitNotPositive", testListLimitNotPositive},
		{"TouchLastUsed", testTouchLastUsed},
		{"BootstrapOnce", testBootstrapOnce},
		{"BootstrapConflictStoresNothing", testBootstrapConflictStoresNothing},
		{"RegisterActions", testRegisterActions},
		{"CatalogCapped", testCatalogCapped},
		{"ConcurrentCatalogGrowth", testConcurrentCatalogGrowth},
		{"LastOwnerKept", testLastOwnerKept},
		{"NoOwnerNoRule", testNoOwnerNoRule},
		{"ConcurrentOwnerRemovals", testConcurrentOwnerRemovals},
		{"SubscribeReplayThenChanges", testSubscribeReplayThenChanges},
		{"SubscribeTwoSubscribers", testSubscribeTwoSubscribers},
		{"SubscribeStopsOnCancel", testSubscribeStopsOnCancel},
		{"AuditRecordedWithWrite", testAuditRecordedWithWrite},
		{"AuditAbsentWhenWriteFails", testAuditAbsentWhenWriteFails},
		{"AuditModifyFillsEvent", testAuditModifyFillsEvent},
		{"AuditIDsFollowCommitOrder", testAuditIDsFollowCommitOrder},
		{"AuditListPagination", testAuditListPagination},
		{"AuditTargetFilter", testAuditTargetFilter},
		{"AuditBadCursor", testAuditBadCursor},
		{"AuditPrune", testAuditPrune},
		{"KeyChecksRecordedInOrder", testKeyChecksRecordedInOrder},
		{"KeyCheckMismatchStoresNothing", testKeyCheckMismatch},
		{"HashKeyIDFollowsUpdates", testHashKeyIDFollowsUpdates},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open(t))
		})
	}
}

// base is the time the test tokens are built around: UTC and a whole number
// of nanoseconds, without monotonic reading, as a store returns times.
var base = time.Date(2031, 3, 4, 5, 6, 7, 891011121, time.UTC)

// newToken returns a token with every field set, derived from name so that
// tokens with different names have different ids and hashes.
func newToken(name string) *storage.Token {
	sum := sha256.Sum256([]byte("secret of " + name))
	return &storage.Token{
		ID:           "id-" + name,
		Name:         name,
		Description:  "the token called " + name,
		Kind:         storage.KindAPI,
		Type:         storage.TypeCustom,
		Permissions:  []string{"api::article.article.find", "api::article.article.create"},
		Lifespan:     7 * 24 * time.Hour,
		ExpireTime:   base.Add(7 * 24 * time.Hour),
		CreateTime:   base,
		UpdateTime:   base.Add(time.Minute),
		LastUsedTime: base.Add(time.Hour),
		SecretHash:   sum[:],
		SecretHint:   "tkd_ab...wxyz",
		HashKeyID:    "k1-" + name,
	}
}

// hashOf returns a secret hash no newToken has.
func hashOf(s string) []byte {
	sum := sha256.Sum256([]byte("other hash " + s))
	return sum[:]
}

// diffToken describes how got differs from want, or returns "". Times are
// compared with Equal (a store may change location and drops monotonic
// readings), and nil and empty slices are equal.
func diffToken(got, want *storage.Token) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("got %v, want %v", got, want)
		}
		return ""
	}
	var d []string
	field := func(name string, equal bool, g, w any) {
		if !equal {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	field("ID", got.ID == want.ID, got.ID, want.ID)
	field("Name", got.Name == want.Name, got.Name, want.Name)
	field("Description", got.Description == want.Description, got.Description, want.Description)
	field("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	field("Type", got.Type == want.Type, got.Type, want.Type)
	field("Permissions", slices.Equal(got.Permissions, want.Permissions), got.Permissions, want.Permissions)
	field("Lifespan", got.Lifespan == want.Lifespan, got.Lifespan, want.Lifespan)
	field("ExpireTime", got.ExpireTime.Equal(want.ExpireTime), got.ExpireTime, want.ExpireTime)
	field("CreateTime", got.CreateTime.Equal(want.CreateTime), got.CreateTime, want.CreateTime)
	field("UpdateTime", got.UpdateTime.Equal(want.UpdateTime), got.UpdateTime, want.UpdateTime)
	field("LastUsedTime", got.LastUsedTime.Equal(want.LastUsedTime), got.LastUsedTime, want.LastUsedTime)
	field("SecretHash", slices.Equal(got.SecretHash, want.SecretHash), got.SecretHash, want.SecretHash)
	field("SecretHint", got.SecretHint == want.SecretHint, got.SecretHint, want.SecretHint)
	field("PreviousSecretHash", slices.Equal(got.PreviousSecretHash, want.PreviousSecretHash), got.PreviousSecretHash, want.PreviousSecretHash)
	field("PreviousExpireTime", got.PreviousExpireTime.Equal(want.PreviousExpireTime), got.PreviousExpireTime, want.PreviousExpireTime)
	field("HashKeyID", got.HashKeyID == want.HashKeyID, got.HashKeyID, want.HashKeyID)
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

func create(t *testing.T, s storage.Store, tokens ...*storage.Token) {
	t.Helper()
	for _, tok := range tokens {
		if err := s.CreateToken(context.Background(), tok, nil); err != nil {
			t.Fatalf("CreateToken(%q): %v", tok.ID, err)
		}
	}
}

// wantStored fails t unless the store holds exactly want under want.ID.
func wantStored(t *testing.T, s storage.Store, want *storage.Token) {
	t.Helper()
	got, err := s.GetToken(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("GetToken(%q): %v", want.ID, err)
	}
	if d := diffToken(got, want); d != "" {
		t.Fatalf("GetToken(%q): %s", want.ID, d)
	}
}

func wantNotStored(t *testing.T, s storage.Store, id string) {
	t.Helper()
	if _, err := s.GetToken(context.Background(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken(%q) = %v, want ErrNotFound", id, err)
	}
}

func testCreateGetRoundTrip(t *testing.T, s storage.Store) {
	minimal := &storage.Token{
		ID: "minimal", Name: "Minimal", Kind: storage.KindAPI, Type: storage.TypeReadOnly,
		CreateTime: base, UpdateTime: base, SecretHash: hashOf("minimal"),
	}
	admin := newToken("Root Admin")
	admin.Kind, admin.Type, admin.Permissions, admin.Lifespan, admin.ExpireTime = storage.KindAdmin, storage.TypeFullAccess, nil, 0, time.Time{}
	local := newToken("Local times")
	loc := time.FixedZone("UTC+5", 5*3600)
	local.CreateTime, local.UpdateTime = local.CreateTime.In(loc), time.Now() // monotonic reading, local zone
	unicode := newToken("Ünïcödé ✓ name")
	unicode.Description = "line one\nline two\x00 with a NUL"
	unicode.Permissions = []string{"a", "", "b"}
	previous := newToken("Previous secret")
	previous.PreviousSecretHash, previous.PreviousExpireTime = hashOf("previous"), base.Add(30*time.Minute)
	early := newToken("Before 1970")
	early.CreateTime, early.ExpireTime = time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		name string
		tok  *storage.Token
	}{
		{"EveryField", newToken("Every field")},
		{"Minimal", minimal},
		{"AdminUnlimited", admin},
		{"LocalTimes", local},
		{"Unicode", unicode},
		{"Before1970", early},
		{"PreviousSecret", previous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			create(t, s, tc.tok)
			wantStored(t, s, tc.tok)
		})
	}
}

func testCallerOwnsValues(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Owned")
	want := tok.Clone()
	create(t, s, tok)
	// Changing what was passed in or handed out must not reach the store.
	tok.Name, tok.Permissions[0], tok.SecretHash[0] = "changed", "changed", tok.SecretHash[0]+1
	got, err := s.GetToken(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Permissions[0], got.SecretHash[0] = "changed", got.SecretHash[0]+1
	updated, err := s.UpdateToken(ctx, want.ID, func(t *storage.Token) error { return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	updated.Permissions[0] = "changed"
	wantStored(t, s, want)
}

func testNotFound(t *testing.T, s storage.Store) {
	ctx := context.Background()
	create(t, s, newToken("Existing"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.GetToken(ctx, "missing"); return err }},
		{"Update", func() error {
			_, err := s.UpdateToken(ctx, "missing", func(*storage.Token) error { return nil }, nil)
			return err
		}},
		{"Delete", func() error { return s.DeleteToken(ctx, "missing", nil, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
	}
}

func testCreateConflicts(t *testing.T, s storage.Store) {
	existing := newToken("Foo")
	create(t, s, existing)
	for _, tc := range []struct {
		name string
		tok  func() *storage.Token
		want error
	}{
		{"DuplicateID", func() *storage.Token {
			tok := newToken("Other")
			tok.ID = existing.ID
			return tok
		}, storage.ErrIDTaken},
		{"DuplicateName", func() *storage.Token {
			tok := newToken("Other")
			tok.Name = "Foo"
			return tok
		}, storage.ErrNameTaken},
		{"DuplicateNameOtherCase", func() *storage.Token {
			tok := newToken("Other")
			tok.Name = "fOO"
			return tok
		}, storage.ErrNameTaken},
		{"DuplicateHash", func() *storage.Token {
			tok := newToken("Other")
			tok.SecretHash = slices.Clone(existing.SecretHash)
			return tok
		}, storage.ErrHashTaken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok()
			if err := s.CreateToken(context.Background(), tok, nil); !errors.Is(err, tc.want) {
				t.Fatalf("CreateToken = %v, want %v", err, tc.want)
			}
			wantStored(t, s, existing)
			if tok.ID != existing.ID {
				wantNotStored(t, s, tok.ID)
			}
			// Nothing of the refused token was kept: its name and hash are free.
			other := newToken("Other")
			create(t, s, other)
			if err := s.DeleteToken(context.Background(), other.ID, nil, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func testUpdateConflicts(t *testing.T, s storage.Store) {
	foo, bar := newToken("Foo"), newToken("Bar")
	create(t, s, foo, bar)
	for _, tc := range []struct {
		name   string
		modify func(*storage.Token)
		want   error
	}{
		{"RenameToTakenName", func(t *storage.Token) { t.Name = "Foo" }, storage.ErrNameTaken},
		{"RenameToTakenNameOtherCase", func(t *storage.Token) { t.Name = "foo" }, storage.ErrNameTaken},
		{"TakenHash", func(t *storage.Token) { t.SecretHash = slices.Clone(foo.SecretHash) }, storage.ErrHashTaken},
		{"TakenHashAndOtherChanges", func(t *storage.Token) {
			t.Description = "changed"
			t.SecretHash = slices.Clone(foo.SecretHash)
		}, storage.ErrHashTaken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.UpdateToken(context.Background(), bar.ID, func(t *storage.Token) error {
				tc.modify(t)
				return nil
			}, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("UpdateToken = %v, want %v", err, tc.want)
			}
			wantStored(t, s, foo)
			wantStored(t, s, bar)
		})
	}
}

func testRenameOwnNameOtherCase(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Foo")
	create(t, s, tok)
	got, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
		t.Name = "FOO"
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("rename Foo to FOO: %v", err)
	}
	tok.Name = "FOO"
	if d := diffToken(got, tok); d != "" {
		t.Fatalf("UpdateToken returned %s", d)
	}
	wantStored(t, s, tok)
	// The name is still taken in every case.
	other := newToken("foo")
	if err := s.CreateToken(ctx, other, nil); !errors.Is(err, storage.ErrNameTaken) {
		t.Fatalf("create foo after rename to FOO = %v, want ErrNameTaken", err)
	}
}

func testUpdateModifyError(t *testing.T, s storage.Store) {
	tok := newToken("Foo")
	create(t, s, tok)
	errRefused := errors.New("refused by modify")
	got, err := s.UpdateToken(context.Background(), tok.ID, func(t *storage.Token) error {
		t.Name, t.Description, t.SecretHash = "Renamed", "changed", hashOf("new")
		return errRefused
	}, nil)
	if err != errRefused {
		t.Fatalf("UpdateToken = %v, %v; want modify's error as is", got, err)
	}
	wantStored(t, s, tok)
	// The name it tried to take is still free.
	create(t, s, newToken("Renamed"))
}

func testUpdateImmutableFields(t *testing.T, s storage.Store) {
	tok := newToken("Foo")
	create(t, s, tok)
	got, err := s.UpdateToken(context.Background(), tok.ID, func(t *storage.Token) error {
		t.ID, t.CreateTime, t.Description = "another-id", base.Add(time.Hour), "changed"
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok.Description = "changed"
	if d := diffToken(got, tok); d != "" {
		t.Fatalf("UpdateToken returned %s", d)
	}
	wantStored(t, s, tok)
	wantNotStored(t, s, "another-id")
}

func testUpdateMovesIndexes(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Old name")
	create(t, s, tok)
	oldHash := tok.SecretHash
	tok.Name, tok.SecretHash, tok.Permissions, tok.ExpireTime = "New name", hashOf("new"), nil, time.Time{}
	got, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
		t.Name, t.SecretHash, t.Permissions, t.ExpireTime = tok.Name, tok.SecretHash, nil, time.Time{}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffToken(got, tok); d != "" {
		t.Fatalf("UpdateToken returned %s", d)
	}
	wantStored(t, s, tok)
	// The old name and hash are free, the new ones taken.
	reuse := newToken("Old name")
	reuse.ID, reuse.SecretHash = "reuse", oldHash
	create(t, s, reuse)
	clash := newToken("new NAME")
	if err := s.CreateToken(ctx, clash, nil); !errors.Is(err, storage.ErrNameTaken) {
		t.Fatalf("create with the new name = %v, want ErrNameTaken", err)
	}
	clash = newToken("Clash")
	clash.SecretHash = slices.Clone(tok.SecretHash)
	if err := s.CreateToken(ctx, clash, nil); !errors.Is(err, storage.ErrHashTaken) {
		t.Fatalf("create with the new hash = %v, want ErrHashTaken", err)
	}
}

func testDeleteFreesNameAndHash(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Foo")
	create(t, s, tok)
	if err := s.DeleteToken(ctx, tok.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	wantNotStored(t, s, tok.ID)
	if err := s.DeleteToken(ctx, tok.ID, nil, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
	again := newToken("foo")
	again.SecretHash = slices.Clone(tok.SecretHash)
	create(t, s, again)
	wantStored(t, s, again)
	page, err := s.ListTokens(ctx, storage.ListQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Tokens) != 1 || page.Tokens[0].ID != again.ID {
		t.Fatalf("ListTokens after delete and re-create: %v", ids(page.Tokens))
	}
}

func testDeleteCheckRefuses(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Guarded")
	create(t, s, tok)
	refused := errors.New("refused by check")
	var seen string
	ev := &storage.AuditEvent{Time: base, Operation: storage.AuditDeleteToken, TargetID: tok.ID}
	err := s.DeleteToken(ctx, tok.ID, func(cur *storage.Token) error {
		seen = cur.Name
		return refused
	}, ev)
	if err != refused {
		t.Fatalf("DeleteToken with a refusing check = %v, want the check's error as is", err)
	}
	if seen != "Guarded" {
		t.Fatalf("check saw name %q, want the stored token", seen)
	}
	wantStored(t, s, tok)
	if ev.ID != "" {
		t.Fatalf("refused delete recorded audit event %q", ev.ID)
	}
	if err := s.DeleteToken(ctx, tok.ID, func(*storage.Token) error { return nil }, nil); err != nil {
		t.Fatalf("DeleteToken with an accepting check: %v", err)
	}
	wantNotStored(t, s, tok.ID)
}

// withPrevious returns a token called name whose previous secret hash is
// hashOf(name), in its grace period.
func withPrevious(name string) *storage.Token {
	tok := newToken(name)
	tok.PreviousSecretHash, tok.PreviousExpireTime = hashOf(name), base.Add(time.Hour)
	return tok
}

func testPreviousHashIndexed(t *testing.T, s storage.Store) {
	ctx := context.Background()
	held, other := withPrevious("Held"), newToken("Other")
	create(t, s, held, other)
	prev, cur := held.PreviousSecretHash, held.SecretHash
	for _, tc := range []struct {
		name  string
		write func() error
	}{
		{"CreateWithItAsSecret", func() error {
			tok := newToken("New")
			tok.SecretHash = slices.Clone(prev)
			return s.CreateToken(ctx, tok, nil)
		}},
		{"CreateWithItAsPrevious", func() error {
			tok := newToken("New")
			tok.PreviousSecretHash = slices.Clone(prev)
			return s.CreateToken(ctx, tok, nil)
		}},
		{"CreateWithCurrentAsPrevious", func() error {
			tok := newToken("New")
			tok.PreviousSecretHash = slices.Clone(cur)
			return s.CreateToken(ctx, tok, nil)
		}},
		{"CreateWithOneHashTwice", func() error {
			tok := newToken("New")
			tok.PreviousSecretHash = slices.Clone(tok.SecretHash)
			return s.CreateToken(ctx, tok, nil)
		}},
		{"UpdateToItAsSecret", func() error {
			_, err := s.UpdateToken(ctx, other.ID, func(t *storage.Token) error {
				t.PreviousSecretHash, t.SecretHash = t.SecretHash, slices.Clone(prev)
				return nil
			}, nil)
			return err
		}},
		{"UpdateToItAsPrevious", func() error {
			_, err := s.UpdateToken(ctx, other.ID, func(t *storage.Token) error {
				t.PreviousSecretHash = slices.Clone(prev)
				return nil
			}, nil)
			return err
		}},
		{"UpdateToOneHashTwice", func() error {
			_, err := s.UpdateToken(ctx, other.ID, func(t *storage.Token) error {
				t.PreviousSecretHash = slices.Clone(t.SecretHash)
				return nil
			}, nil)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(); !errors.Is(err, storage.ErrHashTaken) {
				t.Fatalf("write = %v, want ErrHashTaken", err)
			}
			wantStored(t, s, held)
			wantStored(t, s, other)
			wantNotStored(t, s, newToken("New").ID)
		})
	}
}

func testPreviousHashMoves(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Rotated")
	create(t, s, tok)
	h1, h2, h3 := tok.SecretHash, hashOf("second"), hashOf("third")
	// setHashes stores secret and previous as tok's hashes and checks it.
	setHashes := func(t *testing.T, secret, previous []byte) {
		t.Helper()
		got, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
			t.SecretHash, t.PreviousSecretHash = slices.Clone(secret), slices.Clone(previous)
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok.SecretHash, tok.PreviousSecretHash = secret, previous
		if d := diffToken(got, tok); d != "" {
			t.Fatalf("UpdateToken returned %s", d)
		}
		wantStored(t, s, tok)
	}
	// taken fails t unless another token can take none of hashes.
	taken := func(t *testing.T, hashes ...[]byte) {
		t.Helper()
		for i, h := range hashes {
			c := newToken("Clash")
			c.SecretHash = slices.Clone(h)
			if err := s.CreateToken(ctx, c, nil); !errors.Is(err, storage.ErrHashTaken) {
				t.Fatalf("create with hash %d = %v, want ErrHashTaken", i, err)
			}
		}
	}
	// free fails t unless another token can take hash (as its previous one).
	free := func(t *testing.T, hash []byte) {
		t.Helper()
		c := newToken("Free")
		c.PreviousSecretHash = slices.Clone(hash)
		create(t, s, c)
		if err := s.DeleteToken(ctx, c.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("Regenerate", func(t *testing.T) {
		setHashes(t, h2, h1)
		taken(t, h1, h2)
	})
	t.Run("RegenerateAgain", func(t *testing.T) {
		setHashes(t, h3, h2)
		taken(t, h2, h3)
		free(t, h1)
	})
	t.Run("Swap", func(t *testing.T) {
		setHashes(t, h2, h3)
		taken(t, h2, h3)
		free(t, h1)
	})
	t.Run("RemovePrevious", func(t *testing.T) {
		setHashes(t, h2, nil)
		taken(t, h2)
		free(t, h3)
	})
	t.Run("PreviousWithoutRegenerate", func(t *testing.T) {
		setHashes(t, h2, h1)
		taken(t, h1, h2)
		free(t, h3)
	})
}

func testDeleteFreesBothHashes(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := withPrevious("Deleted")
	create(t, s, tok)
	if err := s.DeleteToken(ctx, tok.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	// A new token takes both hashes, each in the other's place.
	again := newToken("Again")
	again.SecretHash, again.PreviousSecretHash = slices.Clone(tok.PreviousSecretHash), slices.Clone(tok.SecretHash)
	create(t, s, again)
	wantStored(t, s, again)
}

// winners returns how many racers succeeded, given each racer's error: a
// racer may only succeed or fail with lost (the refusal the race is about);
// any other error fails the test.
func winners(t *testing.T, errs []error, lost error) int {
	t.Helper()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, lost):
			t.Errorf("racer %d: %v, want nil or %v", i, err, lost)
		}
	}
	return wins
}

func testConcurrentCreateSameName(t *testing.T, s storage.Store) {
	const n = 20
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok := newToken(fmt.Sprintf("racer %d", i))
			tok.Name = "Shared"
			if i%2 == 1 {
				tok.Name = "SHARED"
			}
			<-start
			errs[i] = s.CreateToken(context.Background(), tok, nil)
		})
	}
	close(start)
	wg.Wait()
	wins := winners(t, errs, storage.ErrNameTaken)
	if wins != 1 {
		t.Fatalf("%d creates of one name succeeded, want 1", wins)
	}
	page, err := s.ListTokens(context.Background(), storage.ListQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Tokens) != 1 {
		t.Fatalf("%d tokens stored, want 1", len(page.Tokens))
	}
}

func ids(tokens []*storage.Token) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = t.ID
	}
	return out
}

// listAll follows the cursor from the first page to the last and returns
// every token in order. It checks the page-size contract on the way.
func listAll(t *testing.T, s storage.Store, q storage.ListQuery) []*storage.Token {
	t.Helper()
	return allPages(t, q.Limit, q.After, func(after string) ([]*storage.Token, string, error) {
		q.After = after
		page, err := s.ListTokens(context.Background(), q)
		if err != nil {
			return nil, "", fmt.Errorf("ListTokens(%+v): %w", q, err)
		}
		return page.Tokens, page.Next, nil
	})
}

// allPages follows a listing's cursor from after ("" for the first page) to
// the last page and returns every item in order, checking on the way that no page exceeds
// limit and that only a full page announces another.
func allPages[T any](t *testing.T, limit int, after string, page func(after string) ([]T, string, error)) []T {
	t.Helper()
	var all []T
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages: the cursor does not advance")
		}
		items, next, err := page(after)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > limit {
			t.Fatalf("page of %d items, limit %d", len(items), limit)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if len(items) < limit {
			t.Fatalf("page of %d items with a next cursor, limit %d", len(items), limit)
		}
		after = next
	}
}

// paginationTokens stores n tokens whose name order, create-time order and
// id order all differ, and returns their ids in name order and in
// create-time-descending order.
func paginationTokens(t *testing.T, s storage.Store, n int) (byName, byCreatedDesc []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	created := rng.Perm(n)
	var tokens []*storage.Token
	for i := range n {
		name := fmt.Sprintf("token %02d", (i*7)%n)
		if i%3 == 0 {
			name = fmt.Sprintf("TOKEN %02d", (i*7)%n) // name order is case-insensitive
		}
		tok := newToken(name)
		tok.ID = fmt.Sprintf("id-%02d", i)
		tok.CreateTime = base.Add(time.Duration(created[i]) * time.Second)
		tokens = append(tokens, tok)
	}
	create(t, s, tokens...)
	sort.Slice(tokens, func(i, j int) bool {
		return storage.NameKey(tokens[i].Name) < storage.NameKey(tokens[j].Name)
	})
	byName = ids(tokens)
	sort.Slice(tokens, func(i, j int) bool { return tokens[i].CreateTime.After(tokens[j].CreateTime) })
	byCreatedDesc = ids(tokens)
	return byName, byCreatedDesc
}

func testListPagination(t *testing.T, s storage.Store) {
	byName, byCreatedDesc := paginationTokens(t, s, 25)
	for _, order := range []struct {
		name  string
		order storage.Order
		want  []string
	}{
		{"ByName", storage.OrderByName, byName},
		{"ByCreateTimeDesc", storage.OrderByCreateTimeDesc, byCreatedDesc},
	} {
		for _, limit := range []int{1, 7, 25, 100} {
			t.Run(fmt.Sprintf("%s/Limit%d", order.name, limit), func(t *testing.T) {
				got := ids(listAll(t, s, storage.ListQuery{Order: order.order, Limit: limit}))
				if !slices.Equal(got, order.want) {
					t.Fatalf("listed %v\nwant %v", got, order.want)
				}
			})
		}
	}
}

func testListStableAcrossChanges(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		order storage.Order
		// newBefore and newAfter are created between the pages: one sorts
		// among the tokens already listed, the other among those to come.
		newBefore, newAfter func(*storage.Token)
	}{
		{"ByName", storage.OrderByName,
			func(t *storage.Token) { t.Name = "b 00 new" },
			func(t *storage.Token) { t.Name = "y 99 new" }},
		{"ByCreateTimeDesc", storage.OrderByCreateTimeDesc,
			func(t *storage.Token) { t.CreateTime = base.Add(time.Hour) },
			func(t *storage.Token) { t.CreateTime = base.Add(-time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tokens []*storage.Token
			for i := range 10 {
				tok := newToken(fmt.Sprintf("%s %c token", tc.name, 'c'+i))
				tok.Name = fmt.Sprintf("%c %02d", 'c'+i, i)
				tok.CreateTime = base.Add(-time.Duration(i) * time.Minute)
				tokens = append(tokens, tok)
			}
			create(t, s, tokens...)
			defer func() {
				page, err := s.ListTokens(ctx, storage.ListQuery{Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				for _, tok := range page.Tokens {
					if err := s.DeleteToken(ctx, tok.ID, nil, nil); err != nil {
						t.Fatal(err)
					}
				}
			}()
			// Both orders list tokens[0], tokens[1], ... here.
			q := storage.ListQuery{Order: tc.order, Limit: 4}
			first, err := s.ListTokens(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ids(first.Tokens), ids(tokens[:4]); !slices.Equal(got, want) {
				t.Fatalf("first page %v, want %v", got, want)
			}
			// Delete the last token listed (the cursor's own) and one to
			// come, and add one on each side of the cursor.
			for _, id := range []string{tokens[3].ID, tokens[5].ID} {
				if err := s.DeleteToken(ctx, id, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			before, after := newToken(tc.name+" before"), newToken(tc.name+" after")
			tc.newBefore(before)
			tc.newAfter(after)
			create(t, s, before, after)

			q.After = first.Next
			rest := ids(listAll(t, s, q))
			want := []string{tokens[4].ID, tokens[6].ID, tokens[7].ID, tokens[8].ID, tokens[9].ID, after.ID}
			if !slices.Equal(rest, want) {
				t.Fatalf("after changes the next pages list %v, want %v", rest, want)
			}
		})
	}
}

func testListFilters(t *testing.T, s storage.Store) {
	mk := func(name string, kind storage.Kind, typ storage.Type, expire time.Time) *storage.Token {
		tok := newToken(name)
		tok.Kind, tok.Type, tok.ExpireTime = kind, typ, expire
		return tok
	}
	tokens := []*storage.Token{
		mk("a api read never", storage.KindAPI, storage.TypeReadOnly, time.Time{}),
		mk("b api full soon", storage.KindAPI, storage.TypeFullAccess, base.Add(time.Hour)),
		mk("c api custom later", storage.KindAPI, storage.TypeCustom, base.Add(48*time.Hour)),
		mk("d admin full never", storage.KindAdmin, storage.TypeFullAccess, time.Time{}),
		mk("e admin custom soon", storage.KindAdmin, storage.TypeCustom, base.Add(2*time.Hour)),
		mk("f api read expired", storage.KindAPI, storage.TypeReadOnly, base.Add(-time.Hour)),
		mk("g api read at cutoff", storage.KindAPI, storage.TypeReadOnly, base.Add(24*time.Hour)),
	}
	create(t, s, tokens...)
	cutoff := base.Add(24 * time.Hour)
	for _, tc := range []struct {
		name string
		q    storage.ListQuery
		want []int // indexes into tokens, in name order
	}{
		{"None", storage.ListQuery{}, []int{0, 1, 2, 3, 4, 5, 6}},
		{"KindAPI", storage.ListQuery{Kind: storage.KindAPI}, []int{0, 1, 2, 5, 6}},
		{"KindAdmin", storage.ListQuery{Kind: storage.KindAdmin}, []int{3, 4}},
		{"TypeFullAccess", storage.ListQuery{Type: storage.TypeFullAccess}, []int{1, 3}},
		{"TypeReadOnly", storage.ListQuery{Type: storage.TypeReadOnly}, []int{0, 5, 6}},
		{"ExpireBefore", storage.ListQuery{ExpireBefore: cutoff}, []int{1, 4, 5}},
		{"KindAndType", storage.ListQuery{Kind: storage.KindAPI, Type: storage.TypeCustom}, []int{2}},
		{"AllThree", storage.ListQuery{Kind: storage.KindAdmin, Type: storage.TypeCustom, ExpireBefore: cutoff}, []int{4}},
		{"NoMatch", storage.ListQuery{Kind: storage.KindAdmin, Type: storage.TypeReadOnly}, nil},
	} {
		var want []string
		for _, i := range tc.want {
			want = append(want, tokens[i].ID)
		}
		for _, limit := range []int{1, 2, 100} {
			t.Run(fmt.Sprintf("%s/Limit%d", tc.name, limit), func(t *testing.T) {
				q := tc.q
				q.Limit = limit
				if got := ids(listAll(t, s, q)); !slices.Equal(got, want) {
					t.Fatalf("listed %v, want %v", got, want)
				}
				q.Order = storage.OrderByCreateTimeDesc
				if got := ids(listAll(t, s, q)); len(got) != len(want) {
					t.Fatalf("by create time: listed %v, want %d tokens", got, len(want))
				}
			})
		}
	}
}

func testListBadCursor(t *testing.T, s storage.Store) {
	ctx := context.Background()
	paginationTokens(t, s, 5)
	page, err := s.ListTokens(ctx, storage.ListQuery{Order: storage.OrderByName, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.Next == "" {
		t.Fatal("no cursor after the first of three pages")
	}
	for _, tc := range []struct {
		name  string
		order storage.Order
		after string
	}{
		{"NotBase64", storage.OrderByName, "!!not a cursor!!"},
		{"Garbage", storage.OrderByName, "AAAA"},
		{"OtherOrder", storage.OrderByCreateTimeDesc, page.Next},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ListTokens(ctx, storage.ListQuery{Order: tc.order, After: tc.after, Limit: 2})
			if !errors.Is(err, storage.ErrBadCursor) {
				t.Fatalf("ListTokens = %v, want ErrBadCursor", err)
			}
		})
	}
}

func testListLimitNotPositive(t *testing.T, s storage.Store) {
	for _, limit := range []int{0, -1} {
		if _, err := s.ListTokens(context.Background(), storage.ListQuery{Limit: limit}); err == nil {
			t.Errorf("ListTokens with limit %d succeeded, want an error", limit)
		}
	}
}

// recorder is a Subscribe callback that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	changes []storage.Change
}

func (r *recorder) apply(c storage.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.changes)
}

// since returns the changes recorded after the first n.
func (r *recorder) since(n int) []storage.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes[n:])
}

func subscribe(t *testing.T, s storage.Store) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &recorder{}
	if err := s.Subscribe(ctx, r.apply); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return r
}

func testTouchLastUsed(t *testing.T, s storage.Store) {
	ctx := context.Background()
	used, never := newToken("Used"), newToken("Never used")
	never.LastUsedTime = time.Time{}
	create(t, s, used, never)
	r := subscribe(t, s)
	seen := r.len()

	for _, tc := range []struct {
		name             string
		touch            map[string]time.Time
		wantUsed, wantNv time.Time
	}{
		{"Earlier", map[string]time.Time{used.ID: used.LastUsedTime.Add(-time.Minute)}, used.LastUsedTime, time.Time{}},
		{"Later", map[string]time.Time{used.ID: used.LastUsedTime.Add(time.Minute), never.ID: base}, used.LastUsedTime.Add(time.Minute), base},
		{"UnknownSkipped", map[string]time.Time{"missing": base.Add(time.Hour), never.ID: base.Add(time.Second)}, used.LastUsedTime.Add(time.Minute), base.Add(time.Second)},
		{"Empty", map[string]time.Time{}, used.LastUsedTime.Add(time.Minute), base.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.TouchLastUsed(ctx, tc.touch); err != nil {
				t.Fatal(err)
			}
			u, n := used.Clone(), never.Clone()
			u.LastUsedTime, n.LastUsedTime = tc.wantUsed, tc.wantNv
			wantStored(t, s, u)
			wantStored(t, s, n)
			wantNotStored(t, s, "missing")
			if c := r.since(seen); len(c) != 0 {
				t.Fatalf("TouchLastUsed published %d changes, want none", len(c))
			}
		})
	}
}

func testBootstrapOnce(t *testing.T, s storage.Store) {
	ctx := context.Background()
	first := []*storage.Token{newToken("Root"), newToken("Full Access"), newToken("Read Only")}
	did, err := s.Bootstrap(ctx, first, nil)
	if err != nil || !did {
		t.Fatalf("first Bootstrap = %v, %v; want true, nil", did, err)
	}
	for _, tok := range first {
		wantStored(t, s, tok)
	}
	again := newToken("Again")
	if did, err := s.Bootstrap(ctx, []*storage.Token{again}, nil); err != nil || did {
		t.Fatalf("second Bootstrap = %v, %v; want false, nil", did, err)
	}
	wantNotStored(t, s, again.ID)
	for _, tok := range first {
		if err := s.DeleteToken(ctx, tok.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if did, err := s.Bootstrap(ctx, []*storage.Token{again}, nil); err != nil || did {
		t.Fatalf("Bootstrap after deleting every token = %v, %v; want false, nil", did, err)
	}
	wantNotStored(t, s, again.ID)
}

func testBootstrapConflictStoresNothing(t *testing.T, s storage.Store) {
	ctx := context.Background()
	a, b := newToken("Same"), newToken("Other")
	b.Name = "SAME"
	if did, err := s.Bootstrap(ctx, []*storage.Token{a, b}, nil); !errors.Is(err, storage.ErrNameTaken) || did {
		t.Fatalf("Bootstrap with a duplicate name = %v, %v; want false, ErrNameTaken", did, err)
	}
	wantNotStored(t, s, a.ID)
	wantNotStored(t, s, b.ID)
	// The failed attempt did not mark the store as bootstrapped.
	if did, err := s.Bootstrap(ctx, []*storage.Token{a}, nil); err != nil || !did {
		t.Fatalf("Bootstrap after a failed one = %v, %v; want true, nil", did, err)
	}
	wantStored(t, s, a)
}

func testRegisterActions(t *testing.T, s storage.Store) {
	ctx := context.Background()
	list := func() []storage.Action {
		t.Helper()
		actions, err := s.ListActions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return actions
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("fresh store lists actions %v", got)
	}
	register := func(actions ...storage.Action) {
		t.Helper()
		if err := s.RegisterActions(ctx, actions, AnyCatalog, nil); err != nil {
			t.Fatal(err)
		}
	}
	register(
		storage.Action{ID: "api::b.b.find", Description: "find b"},
		storage.Action{ID: "api::a.a.create", Description: "create a"},
		storage.Action{ID: "api::a.a.find", Description: "find a"},
	)
	first := list()
	wantIDs := []string{"api::a.a.create", "api::a.a.find", "api::b.b.find"}
	var gotIDs []string
	for _, a := range first {
		gotIDs = append(gotIDs, a.ID)
		if a.RegisterTime.IsZero() {
			t.Errorf("action %q has no register time", a.ID)
		}
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("ListActions ids %v, want %v", gotIDs, wantIDs)
	}

	t.Run("Idempotent", func(t *testing.T) {
		register(storage.Action{ID: "api::b.b.find", Description: "find b"})
		if got := list(); !equalActions(got, first) {
			t.Fatalf("after re-registering: %v, want %v", got, first)
		}
	})
	t.Run("DescriptionUpdateKeepsRegisterTime", func(t *testing.T) {
		register(
			storage.Action{ID: "api::a.a.find", Description: "find every a", RegisterTime: base},
			storage.Action{ID: "api::c.c.find", Description: "find c"},
		)
		got := list()
		if len(got) != 4 || got[1].ID != "api::a.a.find" || got[3].ID != "api::c.c.find" {
			t.Fatalf("ListActions = %v", got)
		}
		if got[1].Description != "find every a" || !got[1].RegisterTime.Equal(first[1].RegisterTime) {
			t.Fatalf("updated action = %+v, want description %q and register time %v", got[1], "find every a", first[1].RegisterTime)
		}
	})
}

func equalActions(a, b []storage.Action) bool {
	return slices.EqualFunc(a, b, func(x, y storage.Action) bool {
		return x.ID == y.ID && x.Description == y.Description && x.RegisterTime.Equal(y.RegisterTime)
	})
}

// wantChange fails t unless c is the change of want (a delete if want is nil).
func wantChange(t *testing.T, c storage.Change, id string, want *storage.Token) {
	t.Helper()
	if c.ID != id {
		t.Fatalf("change of %q, want %q", c.ID, id)
	}
	if d := diffToken(c.Token, want); d != "" {
		t.Fatalf("change of %q: %s", id, d)
	}
}

func testSubscribeReplayThenChanges(t *testing.T, s storage.Store) {
	ctx := context.Background()
	stored := []*storage.Token{newToken("One"), newToken("Two"), newToken("Three")}
	create(t, s, stored...)
	r := subscribe(t, s)

	replay := r.since(0)
	if len(replay) != len(stored) {
		t.Fatalf("replayed %d changes, want %d", len(replay), len(stored))
	}
	slices.SortFunc(replay, func(a, b storage.Change) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(stored, func(a, b *storage.Token) int { return strings.Compare(a.ID, b.ID) })
	for i, c := range replay {
		wantChange(t, c, stored[i].ID, stored[i])
	}

	// Each write has been applied by the time it returns.
	n := r.len()
	next := func() storage.Change {
		t.Helper()
		c := r.since(n)
		if len(c) != 1 {
			t.Fatalf("%d changes delivered by the time the write returned, want 1", len(c))
		}
		n++
		return c[0]
	}
	created := newToken("Four")
	create(t, s, created)
	wantChange(t, next(), created.ID, created)

	updated, err := s.UpdateToken(ctx, created.ID, func(t *storage.Token) error {
		t.Description = "updated"
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, next(), created.ID, updated)

	if err := s.DeleteToken(ctx, created.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	wantChange(t, next(), created.ID, nil)

	// Failed writes publish nothing.
	if err := s.CreateToken(ctx, stored[0], nil); err == nil {
		t.Fatal("duplicate create succeeded")
	}
	if _, err := s.UpdateToken(ctx, stored[0].ID, func(*storage.Token) error { return errors.New("no") }, nil); err == nil {
		t.Fatal("failing update succeeded")
	}
	if c := r.since(n); len(c) != 0 {
		t.Fatalf("failed writes published %d changes", len(c))
	}

	boot := newToken("Bootstrapped")
	if _, err := s.Bootstrap(ctx, []*storage.Token{boot}, nil); err != nil {
		t.Fatal(err)
	}
	wantChange(t, next(), boot.ID, boot)
}

func testSubscribeTwoSubscribers(t *testing.T, s storage.Store) {
	ctx := context.Background()
	r1 := subscribe(t, s)
	a := newToken("A")
	create(t, s, a)
	r2 := subscribe(t, s)
	b := newToken("B")
	create(t, s, b)
	if err := s.DeleteToken(ctx, a.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	c1, c2 := r1.since(0), r2.since(0)
	if len(c1) != 3 || len(c2) != 3 {
		t.Fatalf("subscribers got %d and %d changes, want 3 each", len(c1), len(c2))
	}
	wantChange(t, c1[0], a.ID, a)
	wantChange(t, c1[1], b.ID, b)
	wantChange(t, c1[2], a.ID, nil)
	wantChange(t, c2[0], a.ID, a) // replay
	wantChange(t, c2[1], b.ID, b)
	wantChange(t, c2[2], a.ID, nil)
	// Each subscriber owns its tokens.
	if c1[1].Token == c2[1].Token {
		t.Fatal("two subscribers were given the same *Token")
	}
}

func testSubscribeStopsOnCancel(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{}
	if err := s.Subscribe(ctx, r.apply); err != nil {
		t.Fatal(err)
	}
	create(t, s, newToken("Seen"))
	cancel()
	create(t, s, newToken("Not seen"))
	if c := r.since(0); len(c) != 1 || c[0].ID != "id-Seen" {
		t.Fatalf("after cancel the subscriber got %v, want only the change before", c)
	}
	if err := s.Subscribe(ctx, r.apply); err == nil {
		t.Fatal("Subscribe with a done ctx succeeded")
	}
}

func testClosed(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Before close")
	create(t, s, tok)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping before Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	noop := func(*storage.Token) error { return nil }
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"CreateToken", func() error { return s.CreateToken(ctx, newToken("After close"), nil) }},
		{"GetToken", func() error { _, err := s.GetToken(ctx, tok.ID); return err }},
		{"UpdateToken", func() error { _, err := s.UpdateToken(ctx, tok.ID, noop, nil); return err }},
		{"DeleteToken", func() error { return s.DeleteToken(ctx, tok.ID, nil, nil) }},
		{"ListTokens", func() error { _, err := s.ListTokens(ctx, storage.ListQuery{Limit: 1}); return err }},
		{"TouchLastUsed", func() error { return s.TouchLastUsed(ctx, map[string]time.Time{tok.ID: base}) }},
		{"Bootstrap", func() error { _, err := s.Bootstrap(ctx, nil, nil); return err }},
		{"RegisterActions", func() error { return s.RegisterActions(ctx, []storage.Action{{ID: "a.b"}}, AnyCatalog, nil) }},
		{"ListActions", func() error { _, err := s.ListActions(ctx); return err }},
		{"ListAuditEvents", func() error { _, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 1}); return err }},
		{"PruneAuditEvents", func() error { _, err := s.PruneAuditEvents(ctx, base); return err }},
		{"Subscribe", func() error { return s.Subscribe(ctx, func(storage.Change) {}) }},
		{"KeyChecks", func() error { _, err := s.KeyChecks(ctx); return err }},
		{"RecordKeyCheck", func() error { return s.RecordKeyCheck(ctx, storage.KeyCheck{KeyID: "k", Check: []byte{1}}) }},
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Close", s.Close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, storage.ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}
}
