// Command tokend is the central API-token service and its command line.
//
// `tokend serve` runs the service; its flags are Go flags, each with a
// TOKEND_* environment twin (`tokend serve -help` lists them); with -store etcd
// it opens the shared etcd store and hands it to the server, so several
// replicas serve one state. The other
// commands (token, action, audit, recover-root, migrate, completion, version) are built with
// spf13/cobra: each is one constructor taking the shared *app, in its own
// file, added to the tree in newRootCmd. The client commands call a running
// server through the client package; they validate their flags before any
// call and exit 0 on success, 1 when the operation failed, 2 when the command
// line is wrong.
package main
