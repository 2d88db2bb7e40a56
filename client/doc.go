// Package client is what a backend imports to use tokend: a connection to
// its gRPC API that carries an admin credential (Dial), and on top of it the
// calls a backend makes.
//
// A Client is safe for concurrent use by many goroutines; create one per
// tokend deployment and share it.
package client
