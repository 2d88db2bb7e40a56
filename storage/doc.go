// Package storage defines what tokend persists and the contract every storage
// backend honours: the Store interface, the stored records (a token keeps a
// keyed hash of its secret, never the secret), the sentinel errors and the
// change feed that keeps the in-memory introspection index current.
//
// The package knows nothing of gRPC or of the API's generated types: the disk
// schema and the wire schema change separately. Backends live in their own
// packages (storage/bolt, storage/etcd) and are checked by the shared
// conformance suite in storage/storagetest.
package storage
