package service

import (
	"encoding/binary"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/storage"
)

// indexShards spreads the hash map over several locks so that concurrent
// introspections never wait on each other, and a write blocks 1/64th of them.
const indexShards = 64

// index is the in-memory view introspection and authorization read: secret
// hash → the token's current version. It is fed by the store's change feed
// (apply), so every write, on this replica or another, is reflected as soon
// as it commits.
type index struct {
	shards [indexShards]indexShard

	mu   sync.RWMutex // guards byID and keyCounts
	byID map[string]*entry
	// keyCounts counts the tokens by the id of the hash key of their
	// secret.
	keyCounts map[string]*keyCount
}

type indexShard struct {
	mu sync.RWMutex
	// byHash maps the first 8 bytes of a secret hash to the entry holding
	// that hash: half the memory of a map keyed on all 32 bytes, with the
	// full hash compared in the entry. A hash whose prefix is already taken
	// by another token's hash (about one chance in 10^7 with 10^6 tokens)
	// goes to collided, keyed on the whole hash.
	byHash   map[uint64]*entry
	collided map[secretHash]*entry
}

func hashKey(h *secretHash) uint64 { return binary.LittleEndian.Uint64(h[:8]) }

// entry is one version of a token. Everything but usage is immutable once
// built, so readers use it without locks. What a lookup reads (hash,
// expiry, usage, then kind and type at the head of meta) comes first, in the
// entry's first cache line, sparing misses per introspection in a large
// index. The entry is one allocation of 240 bytes, a size class of its own:
// a field more costs 16 bytes per token.
type entry struct {
	hash   secretHash
	expire int64 // unix nanoseconds; 0 = never
	// prevHash is the hash of the previous secret while a rotation grace
	// period runs (nil otherwise); it is valid until meta.prevExpire.
	prevHash *secretHash
	// usage is shared by all versions of one token: it points to the
	// first version's firstUsage.
	usage *usage
	// meta is what the API shows of this version, handed out (as a
	// pointer into the entry) to callers of Introspect.
	meta TokenSnapshot
	// digest sums up what a verifier's answer about this version of an API
	// token depends on (see sumDigest), for the watch's state; computed
	// here, while the record is in the CPU's caches, since summing it later
	// over a whole index would miss them for every token.
	digest     uint64
	firstUsage usage
	grant      grant
	// key counts the tokens whose secret is hashed under the same key,
	// and holds that key's id.
	key *keyCount
}

// holds reports whether h is the hash of this version's secret or of its
// previous one.
func (e *entry) holds(h *secretHash) bool {
	return *h == e.hash || (e.prevHash != nil && *h == *e.prevHash)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// usage tracks a token's last use in memory. Introspection only writes
// lastUsed; the flusher persists it and advances flushed.
type usage struct {
	lastUsed atomic.Int64 // unix nanoseconds, 0 = never
	flushed  atomic.Int64 // the lastUsed value last written to the store
}

// touchGranularity is the finest last-use resolution kept: a token used
// thousands of times a second is written to memory once a second, so hot
// tokens do not bounce a cache line between cores.
const touchGranularity = time.Second

func (u *usage) touch(now time.Time) {
	n := now.UnixNano()
	if n-u.lastUsed.Load() >= int64(touchGranularity) {
		u.lastUsed.Store(n)
	}
}

func (u *usage) last() time.Time {
	if n := u.lastUsed.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

func newIndex() *index {
	ix := &index{byID: make(map[string]*entry), keyCounts: make(map[string]*keyCount)}
	for i := range ix.shards {
		ix.shards[i].byHash = make(map[uint64]*entry)
	}
	return ix
}

// reserve sizes the index for n tokens, so that a replay of n tokens does
// not grow and rehash its maps as it goes. It only makes the maps, so it
// must be called before the first apply.
func (ix *index) reserve(n int) {
	ix.byID = make(map[string]*entry, n)
	// Hashes spread evenly over the shards; a little headroom covers the
	// unevenness and the previous hashes of rotations in grace.
	per := n/indexShards + n/indexShards/8
	for i := range ix.shards {
		ix.shards[i].byHash = make(map[uint64]*entry, per)
	}
}

func (ix *index) shard(h *secretHash) *indexShard {
	return &ix.shards[h[0]%indexShards]
}

// lookup returns the current version of the token whose secret hashes to h.
func (ix *index) lookup(h *secretHash) *entry {
	s := ix.shard(h)
	s.mu.RLock()
	e := s.byHash[hashKey(h)]
	if e == nil || !e.holds(h) {
		e = s.collided[*h] // nil map, nil entry: the usual case
	}
	s.mu.RUnlock()
	return e
}

// find returns the token version whose secret (current or previous) is
// secret, trying each hash key from the newest, with the hash that matched.
func (s *Service) find(secret string) (*entry, secretHash) {
	h := s.hasher.sum(secret)
	e := s.index.lookup(&h)
	for i := 1; e == nil && i < s.hasher.keys(); i++ {
		h = s.hasher.sumWith(i, secret)
		e = s.index.lookup(&h)
	}
	return e, h
}

// byTokenID returns the current version of the token with that id.
func (ix *index) byTokenID(id string) *entry {
	ix.mu.RLock()
	e := ix.byID[id]
	ix.mu.RUnlock()
	return e
}

// entries returns the current version of every token, by id.
func (ix *index) entries() map[string]*entry {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return maps.Clone(ix.byID)
}

// size returns the number of tokens indexed.
func (ix *index) size() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byID)
}

// apply brings the index up to date with one committed change. The old hash
// is removed before apply returns, so a regenerated or deleted secret is dead
// from then on. For a change of one token it returns the token's versions
// before and after it (nil: none), which the watch compares.
//
// A Reset change replaces the whole index in one step under the index lock:
// every token it holds is linked as a new version first, then the tokens it
// lacks are dropped, so a token present before and after never misses a
// lookup in between. It returns nil versions.
func (ix *index) apply(c storage.Change) (before, after *entry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !c.Reset {
		return ix.applyLocked(c)
	}
	keep := make(map[string]bool, len(c.Tokens))
	for _, t := range c.Tokens {
		keep[t.ID] = true
		ix.applyLocked(storage.Change{ID: t.ID, Token: t})
	}
	for id := range ix.byID {
		if !keep[id] {
			ix.applyLocked(storage.Change{ID: id})
		}
	}
	return nil, nil
}

// applyLocked applies one token's change and returns the token's versions
// before and after it; the caller holds ix.mu.
func (ix *index) applyLocked(c storage.Change) (before, after *entry) {
	old := ix.byID[c.ID]
	// Link the new version before unlinking the old one, so a lookup of an
	// unchanged secret never falls into a gap between the two.
	var e *entry
	if c.Token != nil {
		e = newEntry(c.Token, old)
		e.key = ix.countKey(c.Token.HashKeyID, 1)
		ix.byID[c.ID] = e
		ix.link(&e.hash, e)
		if e.prevHash != nil {
			ix.link(e.prevHash, e)
		}
	} else {
		delete(ix.byID, c.ID)
	}
	if old != nil {
		ix.countKey(old.key.id, -1)
		ix.unlink(&old.hash, old)
		if old.prevHash != nil {
			ix.unlink(old.prevHash, old)
		}
	}
	return old, e
}

// countKey adds delta to the count of tokens under that hash key id and
// returns the count, which entries share. The caller holds mu.
func (ix *index) countKey(id string, delta int) *keyCount {
	c := ix.keyCounts[id]
	if c == nil {
		c = &keyCount{id: id}
		ix.keyCounts[id] = c
	}
	c.n += delta
	if c.n <= 0 {
		delete(ix.keyCounts, id)
	}
	return c
}

// keyCount counts the tokens under one hash key id; its id is the one copy
// their entries share.
type keyCount struct {
	id string
	n  int
}

// byHashKey returns the token counts by hash key id.
func (ix *index) byHashKey() map[string]int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	counts := make(map[string]int, len(ix.keyCounts))
	for id, c := range ix.keyCounts {
		counts[id] = c.n
	}
	return counts
}

func (ix *index) link(h *secretHash, e *entry) {
	s := ix.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := hashKey(h)
	if cur := s.byHash[k]; cur == nil || cur.holds(h) {
		// Free, or taken by an older version of this same token.
		s.byHash[k] = e
		return
	}
	if s.collided == nil {
		s.collided = make(map[secretHash]*entry)
	}
	s.collided[*h] = e
}

func (ix *index) unlink(h *secretHash, e *entry) {
	s := ix.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.collided[*h] == e {
		delete(s.collided, *h)
		return
	}
	k := hashKey(h)
	if s.byHash[k] != e {
		return // already replaced by a newer version
	}
	delete(s.byHash, k)
	// A hash that collided on this prefix takes the freed place.
	for ch, ce := range s.collided {
		if hashKey(&ch) == k {
			s.byHash[k] = ce
			delete(s.collided, ch)
			return
		}
	}
}

// matches reports whether the secret hashing to h is valid for this token
// version at now, and whether it is the previous secret of a rotation.
func (e *entry) matches(h *secretHash, now time.Time) (valid, previous bool) {
	if *h == e.hash {
		return e.expire == 0 || now.UnixNano() < e.expire, false
	}
	return e.prevHash != nil && *h == *e.prevHash && now.UnixNano() < e.meta.prevExpire, true
}

func newEntry(t *storage.Token, previous *entry) *entry {
	e := &entry{expire: nanos(t.ExpireTime), grant: newGrant(t), meta: newSnapshot(t)}
	copy(e.hash[:], t.SecretHash)
	if len(t.PreviousSecretHash) == hashLen && !t.PreviousExpireTime.IsZero() {
		e.prevHash = new(secretHash)
		copy(e.prevHash[:], t.PreviousSecretHash)
	} else {
		e.meta.prevExpire = 0
	}
	if e.meta.kind == storage.KindAPI {
		e.digest = e.sumDigest()
	}
	if previous != nil {
		e.usage = previous.usage
	} else {
		e.usage = &e.firstUsage
	}
	if n := t.LastUsedTime.UnixNano(); !t.LastUsedTime.IsZero() {
		for {
			cur := e.usage.lastUsed.Load()
			if cur >= n || e.usage.lastUsed.CompareAndSwap(cur, n) {
				break
			}
		}
		if e.usage.flushed.Load() < n {
			e.usage.flushed.Store(n)
		}
	}
	return e
}

// pendingUse is a last-use time not yet written to the store.
type pendingUse struct {
	id    string
	at    int64 // unix nanoseconds
	usage *usage
}

// unflushed returns the last-use times not yet written to the store.
func (ix *index) unflushed() []pendingUse {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var pending []pendingUse
	for id, e := range ix.byID {
		if last := e.usage.lastUsed.Load(); last > e.usage.flushed.Load() {
			pending = append(pending, pendingUse{id: id, at: last, usage: e.usage})
		}
	}
	return pending
}
