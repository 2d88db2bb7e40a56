// Package bolt is tokend's embedded storage backend: it implements
// storage.Store on a single bbolt file, the default for a one-process
// deployment.
//
// Every write runs in one bbolt transaction, which bbolt syncs to disk before
// it returns, so an acknowledged write survives a crash. A token, its
// indexes (name, current and previous secret hash, create time) and the
// write's audit event change together in that transaction; the buckets are
// listed in buckets.go and records are encoded by the versioned codec in
// record.go. Audit events are keyed by a commit sequence number kept in the
// meta bucket, which gives their IDs (audit.go).
//
// Open upgrades a file of an older schema in place, and rebuilds the name
// index when storage.NameKey changed since it was built, renaming the tokens
// whose names would collide (upgrade.go). A damaged file is reported, never
// crashed on: bbolt's panics on a bad page become errors wrapping
// storage.ErrCorrupt, which Ping keeps returning. Subscribe replays the
// stored tokens a batch at a time and times the replay (LastReplay);
// CountTokens lets a subscriber size its index beforehand (replay.go).
//
// A Store is safe for concurrent use. Writes are serialised by a store mutex
// held across the transaction and the delivery of the resulting changes to
// subscribers, which is what makes the change feed ordered and applied before
// a write returns; reads run in their own read transactions and never take it.
//
// bbolt locks the file while it is open, so a data file serves one process
// at a time: use the etcd backend to run several replicas.
package bolt
