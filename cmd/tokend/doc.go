// Command tokend is the central API-token service and its command line.
//
// The command tree is built with spf13/cobra: each command is one
// constructor taking the shared *app, in its own file, added to the tree in
// newRootCmd. `tokend serve` runs the service; with -store etcd it opens the
// shared etcd store and hands it to the server, so several replicas serve
// one state. serve and the store commands recover-root and migrate parse
// their own Go flags, each with a TOKEND_* environment twin (`-help` lists
// them), which cobra hands over untouched. The client commands (token,
// action, audit) call a running server through the client package with
// cobra flags; completion and version need no server. Every command
// validates its flags before any call and exits 0 on success, 1 when the
// operation failed, 2 when the command line is wrong.
package main
