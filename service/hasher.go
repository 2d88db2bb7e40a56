package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"sync"

	"github.com/tokend/tokend/storage"
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
	pools  []sync.Pool // of *hmacState, one pool per key, newest first
	keyIDs []string    // HashKeyCheck(key).KeyID of each key
}

// hmacState is a keyed HMAC with buffers of its own: a stack buffer would
// escape through the hash.Hash interface and cost an allocation per call.
type hmacState struct {
	mac hash.Hash
	in  [128]byte
	out [hashLen]byte
}

// minKeyLen is the shortest hash key accepted.
const minKeyLen = 32

func newHasher(keys [][]byte) (*hasher, error) {
	if len(keys) == 0 {
		return nil, errors.New("hash key: none given")
	}
	h := &hasher{pools: make([]sync.Pool, len(keys)), keyIDs: make([]string, len(keys))}
	for i, key := range keys {
		if len(key) < minKeyLen {
			return nil, errors.New("hash key: want at least 32 bytes")
		}
		h.keyIDs[i] = HashKeyCheck(key).KeyID
		k := append([]byte(nil), key...)
		h.pools[i].New = func() any { return &hmacState{mac: hmac.New(sha256.New, k)} }
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
	st := pool.Get().(*hmacState)
	st.mac.Reset()
	// HMAC has no WriteString: copy the secret into the state's buffer
	// rather than converting it (an allocation).
	for rest := secret; len(rest) > 0; {
		n := copy(st.in[:], rest)
		st.mac.Write(st.in[:n])
		rest = rest[n:]
	}
	out := secretHash(st.mac.Sum(st.out[:0]))
	pool.Put(st)
	return out
}

// Labels of the two digests HashKeyCheck makes. Distinct from each other and
// from any secret (secrets have no spaces), so neither digest can be
// mistaken for a secret's hash.
const (
	keyIDLabel    = "tokend hash key id v1"
	keyCheckLabel = "tokend hash key check v1"
)

// keyIDLen is the length of a key id in hex characters: 48 bits tell a
// handful of keys apart and are short enough to read in a log line.
const keyIDLen = 12

// HashKeyCheck returns the check a store records for a hash key: a short id
// and a digest, both HMAC-SHA-256 of a fixed label under the key. Neither
// reveals the key, and a key file can be matched against a store's checks
// without any secret.
func HashKeyCheck(key []byte) storage.KeyCheck {
	digest := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	return storage.KeyCheck{KeyID: hex.EncodeToString(digest(keyIDLabel))[:keyIDLen], Check: digest(keyCheckLabel)}
}
