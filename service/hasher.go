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

// hasher computes HMAC-SHA-256 of secrets under the server key. The key lives
// outside the database, so a stolen database alone cannot be used to check
// guessed secrets. HMAC states are pooled: keying one costs two SHA-256
// blocks and allocations the introspection path should not pay per call.
type hasher struct {
	pool sync.Pool
}

// minKeyLen is the shortest hash key accepted.
const minKeyLen = 32

func newHasher(key []byte) (*hasher, error) {
	if len(key) < minKeyLen {
		return nil, errors.New("hash key: want at least 32 bytes")
	}
	k := append([]byte(nil), key...)
	h := &hasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, k) }
	return h, nil
}

// sum returns the keyed hash of secret.
func (h *hasher) sum(secret string) secretHash {
	m := h.pool.Get().(hash.Hash)
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
	h.pool.Put(m)
	return out
}
