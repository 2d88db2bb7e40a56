package bolt

import (
	"encoding/binary"
	"math"
	"time"
)

// The database layout. Every bucket lives at the root and is created by Open;
// changing what a bucket holds or how its keys are built means a new
// schemaVersion.
var (
	// bucketMeta holds facts about the database itself, under the keys below.
	bucketMeta = []byte("meta")
	// bucketTokens maps a token id to its record (see encodeToken).
	bucketTokens = []byte("tokens")
	// bucketTokenNames maps storage.NameKey(name) to the id of the token that
	// has that name. It enforces case-insensitive name uniqueness and, read in
	// key order, lists tokens by name.
	bucketTokenNames = []byte("token_names")
	// bucketTokenHashes maps a token's secret hash to its id: the unique index
	// that keeps two tokens from sharing a hash.
	bucketTokenHashes = []byte("token_hashes")
	// bucketTokenCreated maps createdKey(token) to nothing; read backwards it
	// lists tokens newest first. The id suffix keeps keys unique when two
	// tokens share a create time.
	bucketTokenCreated = []byte("token_created")
	// bucketActions maps an action id to its record (see encodeAction).
	bucketActions = []byte("actions")
)

// Keys of bucketMeta.
var (
	// keySchemaVersion holds the layout version as a uvarint, so that an
	// older binary refuses a file written by a newer one instead of
	// misreading it.
	keySchemaVersion = []byte("schema_version")
	// keyBootstrapped is present (with an empty value) once Bootstrap has
	// stored the initial tokens; deleting those tokens does not remove it.
	keyBootstrapped = []byte("bootstrapped")
)

// schemaVersion is the layout this package reads and writes.
const schemaVersion = 1

// allBuckets lists the buckets Open creates.
var allBuckets = [][]byte{bucketMeta, bucketTokens, bucketTokenNames, bucketTokenHashes, bucketTokenCreated, bucketActions}

// createdKeyLen is the length of the time prefix of a token_created key.
const createdKeyLen = 8

// createdKey returns the token_created key of a token: its create time as
// 8 bytes big-endian unix nanoseconds with the sign bit flipped (so that
// byte order is time order, before 1970 too), followed by the id. A zero
// create time sorts first.
func createdKey(createTime time.Time, id string) []byte {
	n := int64(math.MinInt64)
	if !createTime.IsZero() {
		n = createTime.UnixNano()
	}
	k := make([]byte, createdKeyLen, createdKeyLen+len(id))
	binary.BigEndian.PutUint64(k, uint64(n)^(1<<63))
	return append(k, id...)
}
