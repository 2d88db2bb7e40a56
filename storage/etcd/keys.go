package etcd

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math"
	"time"
)

// The key layout under the prefix. Changing what a key holds or how it is
// built means a new schemaVersion.
const (
	// keySchemaVersion holds the layout version in decimal.
	keySchemaVersion = "meta/schema_version"
	// keyBootstrapped exists (empty) once Bootstrap has stored the initial
	// tokens; deleting those tokens does not remove it.
	keyBootstrapped = "meta/bootstrapped"
	// dirKeyChecks + KeyID holds that key's check; the keys' create
	// revisions order the checks as they were recorded.
	dirKeyChecks = "keychecks/"
	// dirTokens + id holds the token's record (see encodeToken).
	dirTokens = "tokens/"
	// dirNames + storage.NameKey(name) holds the id of the token with that
	// name: the unique name index, and in key order the listing by name.
	// Nothing here records which name rule built it, so a change of
	// storage.NameKey needs a new schemaVersion (unlike the bolt store,
	// which rebuilds its name index at Open).
	dirNames = "names/"
	// dirHashes + hex(hash) holds the id of the token with that secret
	// hash, current or previous: the unique hash index.
	dirHashes = "hashes/"
	// dirCreated + createdKey(token) holds the id; in key order it lists
	// tokens newest first.
	dirCreated = "created/"
	// dirOwners + id exists (empty) for every token that is an owner
	// (storage.Token.IsOwner), written in the transaction that makes it
	// one and deleted in the one that ends it. A write that takes an owner
	// away commits only if another owner's key still exists, so replicas
	// cannot together remove every owner.
	dirOwners = "owners/"
	// dirFences + dirNames or dirCreated + index key exists (empty) for
	// the index keys under dirNames and dirCreated that isFence picks,
	// about one in fenceEvery, written and deleted with the index entry.
	// They split the listing orders into short ranges that ListTokens
	// reads whole: a range read with a limit still counts every key to
	// the range's end on the server, so paging through the whole index
	// one limited read at a time would cost each page the rest of the
	// index. The fences are only split points: one missing or left over
	// changes how much a read covers, never what a listing returns.
	dirFences = "fences/"
	// dirActions + action id holds the action's record.
	dirActions = "actions/"
	// dirAuditEvents + a random event key holds an audit event's record.
	// The event's ID is its key's create revision (see auditID), so
	// listing by create revision lists by commit.
	dirAuditEvents = "audit/events/"
	// dirAuditTargets + target id + NUL + event key holds the event key,
	// for every event with a target: a token's events without scanning
	// the others.
	dirAuditTargets = "audit/targets/"
)

// schemaVersion is the layout this package reads and writes. Version 2
// added dirOwners and dirFences; Open upgrades a version 1 prefix in place
// (see upgradeV1).
const (
	schemaVersion   = "2"
	schemaVersionV1 = "1"
)

// createdKey returns the created-index key of a token: the bitwise
// complement of its create time (unix nanoseconds with the sign bit flipped,
// so that byte order is time order before 1970 too) in hex, so that
// ascending key order is newest first, followed by the id. A zero create
// time sorts last.
func createdKey(createTime time.Time, id string) string {
	n := int64(math.MinInt64)
	if !createTime.IsZero() {
		n = createTime.UnixNano()
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ^(uint64(n) ^ (1 << 63)))
	return hex.EncodeToString(b[:]) + id
}

// auditTargetKey returns the key, under dirAuditTargets, of the event
// stored under eventKey about that target.
func auditTargetKey(targetID, eventKey string) string {
	return targetID + "\x00" + eventKey
}

// eventKeyLen is the length of a random audit event key (hex of 16 bytes).
const eventKeyLen = 32

// auditID returns the storage.AuditEvent.ID of the event committed at that
// revision: 16 hex digits, so that IDs compared as strings order events as
// their revisions do.
func auditID(rev int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(rev))
	return hex.EncodeToString(b[:])
}

// fenceEvery is how many index keys there are, on average, per fence.
const fenceEvery = 64

// isFence reports whether the index key k (under dirNames or dirCreated,
// without the directory) has a fence. It depends on k alone, so every
// replica agrees on it without reading anything.
func isFence(k string) bool {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()%fenceEvery == 0
}
