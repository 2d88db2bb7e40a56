// Package etcd is a storage.Store kept in etcd, for running several tokend
// replicas on one shared state. Every replica opens a Store on the same etcd
// cluster and key prefix; etcd's transactions keep names and secret hashes
// unique across replicas, and each replica's change feed (Subscribe) follows
// an etcd watch, so a revocation committed by one replica reaches the
// in-memory index of every other.
//
// Layout: every key lives under Config.Prefix (see keys.go), so one etcd
// cluster can hold several tokend installations. Records are JSON with a
// format version; a schema version key makes an older tokend refuse a prefix
// written by a newer one.
//
// Consistency: each write is one etcd transaction whose compares make it
// succeed only on the state it was computed from (names and hashes free,
// the token unchanged since it was read); UpdateToken, DeleteToken and
// TouchLastUsed re-read and retry when another replica got in first.
// Audit events are written in the transaction of the change they record,
// and their IDs come from the transaction's etcd revision, so ordering IDs
// orders events by commit across replicas.
//
// The rules that span tokens hold across replicas the same way: a write
// that takes an owner away commits only if another owner's index key still
// exists, and a registration that grows the action catalog only if no
// action was added since it counted the catalog.
//
// Reads scale with what they return: etcd counts every key to the end of a
// range read with a limit, so listings read the short ranges between
// fences (see dirFences) and the snapshot reads ranges it has counted to
// be small, never the whole remaining index one limited page at a time.
//
// Failure: every call to etcd is bounded by Config.RequestTimeout and fails
// with storage.ErrUnavailable when etcd does not answer, so a write either
// commits or changes nothing. The feed survives outages by itself: a broken
// watch is reopened where it stopped, and one that fell behind etcd's
// compaction is replaced by a fresh snapshot, delivered as one Reset change.
// The store implements storage.FeedFreshness: it asks etcd for progress
// notifications every Config.ProgressInterval, so a reader can tell a quiet
// feed from a cut-off one and refuse to answer from an index that may miss a
// revocation.
//
// A Store is safe for concurrent use.
package etcd
