// Package client is what a backend imports to use tokend: a connection to
// its gRPC API that carries an admin credential (Dial), the calls a backend
// makes (Introspect, Watch), a Verifier that answers from a cache kept
// correct by tokend's watch stream, and HTTP middleware and gRPC
// interceptors built on the Verifier.
//
// The package does not import tokend's server code: it checks the secret
// format itself, so a malformed string never costs a call.
//
// Client and Verifier are safe for concurrent use by many goroutines;
// create one of each per tokend deployment and share them.
package client
