// Package server runs tokend: it opens the store (a bbolt file under the data
// directory, unless Config.Store hands it another) and the hash keys, builds
// the service, bootstraps a new store, and serves gRPC (with server
// reflection and grpc.health.v1) and HTTP (the REST gateway under /v1/ with
// the REST token watch, forward auth for reverse proxies under /v1/auth,
// /healthz, /readyz, /metrics, /openapi.json and the web console at /), over
// TLS when configured, until it is shut down, which it does in the reverse
// order of start: stop taking requests, finish in-flight ones, flush
// last-use times, close the store. RecoverRoot mints a new root admin token
// in the bbolt store of a stopped server.
//
// It owns everything about transports, so that the service knows nothing of
// them: the interceptor chain every call runs, whichever transport it came
// by (REST through the gateway reaches the service in process through the
// same chain as gRPC); the one JSON dialect of REST (restJSON) and its error
// answers; the cached views of introspection answers and the REST fast path
// built on them; the limits on slow and idle clients; logs and Prometheus
// metrics. Its subpackage authroutes parses forward auth's route table.
//
// cmd/tokend turns flags into a Config and calls Start (or RecoverRoot);
// tests use the same wiring (Config.Store hands in a store, say one that
// fails on demand). A *Server is safe for concurrent use.
package server
