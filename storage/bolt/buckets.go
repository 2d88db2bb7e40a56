package bolt

import (
	"encoding/binary"
	"encoding/hex"
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
	// bucketTokenHashes maps each secret hash of a token, the current one and
	// the previous one while it has one, to its id: the unique index that
	// keeps two tokens, or a token's two secrets, from sharing a hash.
	bucketTokenHashes = []byte("token_hashes")
	// bucketTokenCreated maps createdKey(token) to nothing; read backwards it
	// lists tokens newest first. The id suffix keeps keys unique when two
	// tokens share a create time.
	bucketTokenCreated = []byte("token_created")
	// bucketActions maps an action id to its record (see encodeAction).
	bucketActions = []byte("actions")
	// bucketAudit maps an audit event key (see auditKey) to the event's
	// record (see encodeAuditEvent). Key order is commit order.
	bucketAudit = []byte("audit")
	// bucketAuditTargets maps auditTargetKey(event) to nothing, for every
	// event that has a TargetID; read backwards from the end of a target's
	// prefix it lists that token's events newest first without scanning the
	// others.
	bucketAuditTargets = []byte("audit_targets")
	// bucketKeyChecks maps keyCheckKey(n), the recording order, to the
	// n-th recorded storage.KeyCheck (see encodeKeyCheck).
	bucketKeyChecks = []byte("key_checks")
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
	// keyWriteProbe is written and removed again by Ping to find out
	// whether the disk takes writes again after a failed commit; it is
	// never left behind by a successful probe.
	keyWriteProbe = []byte("write_probe")
	// keyAuditSequence holds the sequence number of the last audit event
	// recorded, 8 bytes big-endian; absent before the first. It lives here
	// rather than being derived from the last key of bucketAudit so that
	// pruning every event never lets a number be issued twice.
	keyAuditSequence = []byte("audit_sequence")
	// keyNameKeyProbe holds storage.NameKey(nameKeyProbe) as computed when
	// bucketTokenNames was last built. Open rebuilds the index when the
	// build it runs computes another key: the name rule changed, and the
	// entries no longer match what lookups compute.
	keyNameKeyProbe = []byte("name_key_probe")
)

// nameKeyProbe is a name whose key changes under any plausible change of
// storage.NameKey: letters that differ by case, width, ligature,
// compatibility form and full case folding.
const nameKeyProbe = "Ｗｉｄｅ ﬁle Straße İstanbul ǅ K Ⅻ"

// schemaVersion is the layout this package reads and writes. Version 2 added
// bucketAudit, bucketAuditTargets and keyAuditSequence, and indexes previous
// secret hashes in bucketTokenHashes. Version 3 added bucketKeyChecks,
// keyNameKeyProbe and the token record that holds the hash key id. Older
// files are upgraded in place by Open (see initSchema): their records stay
// readable, and only the name index is rebuilt.
const schemaVersion = 3

// allBuckets lists the buckets Open creates.
var allBuckets = [][]byte{
	bucketMeta, bucketTokens, bucketTokenNames, bucketTokenHashes, bucketTokenCreated, bucketActions,
	bucketAudit, bucketAuditTargets, bucketKeyChecks,
}

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

// auditKeyLen is the length of an audit event key.
const auditKeyLen = 8

// auditKey returns the key of the audit event with that sequence number:
// 8 bytes big-endian, so that byte order is commit order.
func auditKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, auditKeyLen), seq)
}

// auditID returns the storage.AuditEvent.ID of the event with that key: the
// key in lower-case hex, 16 characters, so that IDs compared as strings
// order events as their keys do.
func auditID(key []byte) string {
	return hex.EncodeToString(key)
}

// auditTargetSep separates the target id from the event key in an
// audit_targets key.
const auditTargetSep = 0x00

// auditTargetKey returns the audit_targets key of the event with that key
// about that token: the token id, auditTargetSep, then the event key. The
// fixed-length suffix makes the key parse from the end even if an id holds
// the separator; auditTargetPrefix(id) starts every key of that id.
func auditTargetKey(targetID string, key []byte) []byte {
	k := make([]byte, 0, len(targetID)+1+len(key))
	k = append(k, targetID...)
	k = append(k, auditTargetSep)
	return append(k, key...)
}

// auditTargetPrefix returns the prefix shared by the audit_targets keys of
// that token.
func auditTargetPrefix(targetID string) []byte {
	return append([]byte(targetID), auditTargetSep)
}

// splitAuditTargetKey returns the target id and event key of an
// audit_targets key, or ok false if k is too short to be one.
func splitAuditTargetKey(k []byte) (targetID string, key []byte, ok bool) {
	sep := len(k) - auditKeyLen - 1
	if sep < 0 || k[sep] != auditTargetSep {
		return "", nil, false
	}
	return string(k[:sep]), k[sep+1:], true
}
