package server

import (
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/service"
)

// Defaults of the limits on slow and idle clients.
const (
	// DefaultHTTPReadTimeout bounds the reading of a request's body; the
	// headers have readHeaderTimeout.
	DefaultHTTPReadTimeout = 10 * time.Second
	// DefaultHTTPWriteTimeout bounds the writing of a response.
	DefaultHTTPWriteTimeout = 30 * time.Second
	// DefaultGRPCMaxStreams is how many calls one gRPC connection may have
	// in flight at once.
	DefaultGRPCMaxStreams = 1000
	// DefaultGRPCMaxConnectionIdle is how long a gRPC connection with no
	// call in flight is kept before the server sends it GOAWAY.
	DefaultGRPCMaxConnectionIdle = 5 * time.Minute

	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// keepaliveMinTime is the shortest interval between client pings the
	// server tolerates; a client pinging faster is sent GOAWAY
	// ("too_many_pings") instead of keeping the server busy.
	keepaliveMinTime = 10 * time.Second
)

// requestDeadlines gives each request its own read and write deadlines,
// from the moment its headers are read: a client trickling its body, or
// reading the answer slowly, is cut off when they pass. They are set per
// request through http.ResponseController rather than as http.Server
// timeouts, because a server-wide timeout would also end a long-lived
// streaming response, which can extend its own deadlines the same way.
func requestDeadlines(read, write time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Errors mean the connection cannot take deadlines (a test
		// recorder); the request is served as it is.
		_ = rc.SetReadDeadline(now.Add(read))
		_ = rc.SetWriteDeadline(now.Add(write))
		next.ServeHTTP(w, r)
	})
}

// requireCredential answers 401 to a request of an admin route that carries
// a body but no well-formed credential, before reading a byte of the body:
// without it, anyone could make the server read and parse up to the body
// limit, as slowly as the read timeout allows, for nothing. The connection
// is closed after the answer, so the unread body is not drained either.
// The refusal counts as a failed authentication of the client's address, so
// a damped address gets 429 with Retry-After, as on every other path.
// Bodiless requests go on: their answer (401 or 405) is the route's own.
// It wraps the routes whose Authorization is an admin credential (the
// gateway and the introspection fast path), not forward auth, where it
// carries the client's API token.
func requireCredential(svc *service.Service, errs *restErrors, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if err := svc.CheckCredential(hostOf(r.RemoteAddr), r.Header.Values("Authorization")); err != nil {
			w.Header().Set("Connection", "close")
			errs.write(w, 0, status.Convert(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// grpcLimits returns the server options that bound what one gRPC client can
// hold: calls in flight per connection, idle connections, and keepalive
// pings.
func grpcLimits(cfg Config) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(cfg.GRPCMaxStreams)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.GRPCMaxConnectionIdle}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
	}
}
