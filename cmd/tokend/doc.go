// Command tokend is the central API-token service and its command line.
//
// Every command is an spf13/cobra command built by one constructor taking
// the shared *app, in its own file, and added to the tree in newRootCmd.
// `tokend serve` runs the service; it and the offline commands recover-root
// and migrate parse Go flags themselves, each flag with a TOKEND_*
// environment twin (`-help` lists them). With -store etcd, serve opens the
// shared etcd store and hands it to the server, so several replicas serve
// one state. The client commands (token, action, audit, completion) call a
// running server through the client package; they validate their flags
// before any call and exit 0 on success, 1 when the operation failed, 2 when
// the command line is wrong.
package main
