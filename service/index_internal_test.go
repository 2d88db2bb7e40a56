package service

import (
	"testing"
	"unsafe"

	"github.com/tokend/tokend/storage"
)

// TestIndexHashPrefixCollisions: the index keys its map on 8 bytes of the
// hash; tokens whose hashes share those bytes must still each be found, and
// only with their own hash, through updates, rotations and deletes.
func TestIndexHashPrefixCollisions(t *testing.T) {
	hashWith := func(prefixByte, tail byte) secretHash {
		var h secretHash
		for i := range 8 {
			h[i] = prefixByte
		}
		h[31] = tail
		return h
	}
	a, b, c := hashWith(7, 1), hashWith(7, 2), hashWith(7, 3) // same prefix, same shard
	other := hashWith(9, 1)
	tok := func(id string, h secretHash) *storage.Token {
		return &storage.Token{ID: id, Name: id, Kind: storage.KindAPI, Type: storage.TypeReadOnly, SecretHash: h[:]}
	}
	ix := newIndex()
	found := func(h secretHash) string {
		if e := ix.lookup(&h); e != nil {
			return e.meta.id
		}
		return ""
	}
	want := func(step string, cases map[secretHash]string) {
		t.Helper()
		for h, id := range cases {
			if got := found(h); got != id {
				t.Errorf("%s: lookup(hash …%d) = %q, want %q", step, h[31], got, id)
			}
		}
	}
	ix.apply(storage.Change{ID: "A", Token: tok("A", a)})
	ix.apply(storage.Change{ID: "B", Token: tok("B", b)})
	want("two colliding tokens", map[secretHash]string{a: "A", b: "B", c: "", other: ""})

	// A new version of the collided token replaces it in place.
	next := tok("B", b)
	next.Name = "B2"
	ix.apply(storage.Change{ID: "B", Token: next})
	want("collided token updated", map[secretHash]string{a: "A", b: "B"})
	if e := ix.lookup(&b); e == nil || e.meta.name != "B2" {
		t.Errorf("collided token: lookup finds an old version")
	}

	// Deleting the token in the map promotes the collided one.
	ix.apply(storage.Change{ID: "A"})
	want("first deleted", map[secretHash]string{a: "", b: "B"})
	if n := len(ix.shard(&b).collided); n != 0 {
		t.Errorf("%d entries left in collided after promotion", n)
	}

	// A rotation whose new hash collides with the previous one's prefix.
	rot := tok("B", c)
	rot.PreviousSecretHash = b[:]
	rot.PreviousExpireTime = rot.CreateTime.AddDate(3000, 0, 0)
	ix.apply(storage.Change{ID: "B", Token: rot})
	want("rotated into a colliding hash", map[secretHash]string{b: "B", c: "B"})
	ix.apply(storage.Change{ID: "C", Token: tok("C", a)})
	want("third token on the same prefix", map[secretHash]string{a: "C", b: "B", c: "B"})
	ix.apply(storage.Change{ID: "B"})
	want("rotated token deleted", map[secretHash]string{a: "C", b: "", c: ""})
	ix.apply(storage.Change{ID: "C"})
	want("all deleted", map[secretHash]string{a: "", b: "", c: ""})
	s := ix.shard(&a)
	if len(s.byHash) != 0 || len(s.collided) != 0 {
		t.Errorf("shard not empty after every delete: %d in map, %d collided", len(s.byHash), len(s.collided))
	}
}

// TestIndexReset: a Reset change leaves exactly its tokens in the index,
// keeps the last-use time of the tokens it keeps, and drops the others.
func TestIndexReset(t *testing.T) {
	tok := func(id string, hashByte byte) *storage.Token {
		var h secretHash
		h[0], h[31] = hashByte, hashByte
		return &storage.Token{ID: id, Name: id, Kind: storage.KindAPI, Type: storage.TypeReadOnly, SecretHash: h[:]}
	}
	hash := func(t *storage.Token) *secretHash { return (*secretHash)(t.SecretHash) }
	ix := newIndex()
	kept, dropped, moved := tok("kept", 1), tok("dropped", 2), tok("moved", 3)
	for _, x := range []*storage.Token{kept, dropped, moved} {
		ix.apply(storage.Change{ID: x.ID, Token: x})
	}
	ix.byTokenID("kept").usage.lastUsed.Store(42)
	movedNow, added := tok("moved", 4), tok("added", 5)
	ix.apply(storage.Change{Reset: true, Tokens: []*storage.Token{kept, movedNow, added}})

	for _, tc := range []struct {
		name string
		hash *secretHash
		want string
	}{
		{"Kept", hash(kept), "kept"},
		{"Dropped", hash(dropped), ""},
		{"MovedOldHash", hash(moved), ""},
		{"MovedNewHash", hash(movedNow), "moved"},
		{"Added", hash(added), "added"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if e := ix.lookup(tc.hash); e != nil {
				got = e.meta.id
			}
			if got != tc.want {
				t.Fatalf("lookup = %q, want %q", got, tc.want)
			}
		})
	}
	if n := ix.size(); n != 3 {
		t.Fatalf("%d tokens after the reset, want 3", n)
	}
	if n := ix.byTokenID("kept").usage.lastUsed.Load(); n != 42 {
		t.Fatalf("kept token's last use = %d, want it kept (42)", n)
	}
}

// TestEntrySize: an entry (with its snapshot) is one allocation per token in
// the index; past 240 bytes it moves to the next size class, 256, and every
// token costs 16 bytes more.
func TestEntrySize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the budget is for 64-bit platforms")
	}
	if size := unsafe.Sizeof(entry{}); size > 240 {
		t.Errorf("entry is %d bytes, want at most 240", size)
	}
}
