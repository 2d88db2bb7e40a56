// Package forwardauth holds the shipped forward-auth route table,
// routes.yaml, and the tests that put tokend behind a real nginx and a real
// Caddy, configured with the exact blocks the repository's README shows, in
// front of a small test upstream.
package forwardauth
