package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
)

// hashLen is the length of a secret's keyed hash.
const hashLen = sha256.Size

type secretHash = [hashLen]byte

// hasher computes HMAC-SHA-256 of secrets under the server keys. The keys
// live outside the database, so a stolen database alone cannot be used to
// check guessed secrets. The first key hashes new secrets; older ones still
// verify secrets issued under them (key rotation). HMAC states are pooled:
// keying one costs two SHA-256 blocks and allocations the introspection
// path should not pay per call.
type hasher struct {
	pools []sync.Pool // one per key, newest first
}

// minKeyLen is the shortest hash key accepted.
const minKeyLen = 32

func newHasher(keys [][]byte) (*hasher, error) {
	if len(keys) == 0 {
		return nil, errors.New("hash key: none given")
	}
	h := &hasher{pools: make([]sync.Pool, len(keys))}
	for i, key := range keys {
		if len(key) < minKeyLen {
			return nil, errors.New("hash key: want at least 32 bytes")
		}
		k := append([]byte(nil), key...)
		h.pools[i].New = func() any { return hmac.New(sha256.New, k) }
	}
	return h, nil
}

// keys returns the number of keys.
func (h *hasher) keys() int { return len(h.pools) }

// sum returns the keyed hash of secret under the newest key.
func (h *hasher) sum(secret string) secretHash { return h.sumWith(0, secret) }

// sumWith returns the keyed hash of secret under key i (0 = newest).
func (h *hasher) sumWith(i int, secret string) secretHash {
	pool := &h.pools[i]
	m := pool.Get().(hash.Hash)
	m.Reset()
	// io.WriteString would allocate a []byte copy for a hash.Hash without
	// WriteString; sha256's HMAC has none, so write through a stack buffer.
	var buf [128]byte
	if len(secret) <= len(buf) {
		n := copy(buf[:], secret)
		m.Write(buf[:n])
	} else {
		m.Write([]byte(secret))
	}
	var out secretHash
	m.Sum(out[:0])
	pool.Put(m)
	return out
}
