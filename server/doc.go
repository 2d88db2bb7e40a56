// Package server runs tokend: it opens the store (a bbolt file under the data
// directory, unless Config.Store hands it another) and the hash key, builds the
// service, bootstraps a new store, and serves gRPC (with server reflection
// and grpc.health.v1) and HTTP (the REST gateway under /v1/, /healthz,
// /readyz, /metrics and /openapi.json) until it is shut down, which it does
// in the reverse order of start: stop taking requests, finish in-flight ones,
// flush last-use times, close the store.
//
// cmd/tokend only turns flags into a Config and calls Start; tests use the
// same wiring. A *Server is safe for concurrent use.
package server
