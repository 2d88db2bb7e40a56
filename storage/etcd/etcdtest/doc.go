// Package etcdtest starts real etcd servers inside a test process, for the
// tests of the etcd store and of tokend replicas on it. A server runs from
// a fresh directory under t.TempDir() on loopback ports chosen by the
// kernel, with short raft ticks and without fsync, so it is ready in tens
// of milliseconds; it can be stopped and started again on the same ports
// and data to test outages. It is for tests only; a Server is safe for
// concurrent use.
package etcdtest
