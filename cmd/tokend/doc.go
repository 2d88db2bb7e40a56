// Command tokend is the central API-token service. `tokend serve` runs it;
// see `tokend serve -help` for the flags, each with a TOKEND_* environment
// twin. With -store etcd it opens the shared etcd store and hands it to the
// server, so several replicas serve one state; `tokend migrate` copies a
// stopped bbolt store into an empty etcd prefix.
package main
