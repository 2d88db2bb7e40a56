// Package service implements tokend.v1.TokenService: validation, secrets and
// their keyed hashes, the permission model, authorization of every call and
// the rules every write to an admin token obeys (guard.go), the in-memory
// introspection index fed by the store's change feed (loaded at start-up with
// the garbage collector paused, replay.go), the token events that feed and
// the clock give watchers (watch.go: asleep until the first watch, so that
// loading the tokens does not pay for it), and last-used bookkeeping flushed
// to the store in batches.
//
// It depends on storage for persistence and on the generated API types; it
// knows nothing of HTTP, JSON or of a particular storage backend.
// Introspection answers with an Introspection value (an immutable token
// snapshot and the verdict); rendering it, and caching what is rendered, is
// the transports' business. A *Service is safe for concurrent use.
package service
