// Command tokend-bench measures tokend with its own generated client: the
// throughput and latency of gRPC IntrospectToken against the same server's
// grpc.health.v1 Check, and of REST POST /v1/tokens:introspect and (on an
// in-process server) forward auth's GET /v1/auth against its GET /healthz,
// in interleaved rounds; the create throughput; with -etcd-endpoints, the
// same on an etcd store, and with -propagation, how long a change made on
// one of two replicas takes to reach the other; and, with
// -startup-tokens, the start-up time and resident memory of a server with
// many tokens, with the conditions that time depends on (load average,
// dirty pages, how much of the database file is in the page cache), the
// load split into reading, decoding and indexing, and, with
// -startup-baseline, per-round ratios against another tokend binary
// started on the same data in alternating rounds.
//
// By default it starts a server in this process (server.Start on 127.0.0.1
// ports, data in a temporary directory removed at exit); with -grpc-addr,
// -http-addr and -admin-token it targets a running one on the loopback
// interface. It seeds the store, measures, prints a table and stops by
// itself: every loop is bounded by a count or a deadline.
//
// Usage:
//
//	tokend-bench [flags]
//	tokend-bench -tokens 1000000 -seed-direct
//	tokend-bench -startup-tokens 1000000
//	tokend-bench -startup-tokens 1000000 -startup-baseline /tmp/tokend-base
//	tokend-bench -etcd-endpoints http://127.0.0.1:2379 -propagation 500
//
// The load generator and an in-process server share the machine's cores, so
// absolute figures are those of client and server together; the ratios
// compare two calls served under the same conditions in the same run.
package main
