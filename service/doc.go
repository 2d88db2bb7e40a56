// Package service implements tokend.v1.TokenService: validation, secrets and
// their keyed hashes, the permission model, authorization of every call, the
// in-memory introspection index fed by the store's change feed, and last-used
// bookkeeping flushed to the store in batches.
//
// It depends on storage for persistence and on the generated API types; it
// knows nothing of HTTP or of a particular storage backend. A *Service is safe
// for concurrent use.
package service
