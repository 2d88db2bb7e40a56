// Package storagetest is the conformance suite for storage.Store backends.
// A backend's tests call Run with a function that opens a fresh, empty store
// (see Run); the suite then checks the contract written on storage.Store:
// round trips, sentinel errors, uniqueness (of names, under concurrency too,
// and of current and previous secret hashes), pagination, filters, last-use
// bookkeeping, bootstrap, the action catalog, the change feed, the audit
// trail (recorded with each write and only then, IDs in commit order,
// listing, filtering, pruning), the hash key checks and key ids, and Close.
//
// The suite only uses the storage package's exported API, so a backend that
// passes it can replace another. It is meant for tests only; Run is safe to
// call from parallel tests, each call using its own stores.
package storagetest
