package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/service"
)

// Transports, as metric labels and log fields.
const (
	transportGRPC = "grpc" // gRPC clients
	transportREST = "rest" // REST clients, through the gateway or the introspection fast path
)

// clientAddrKey is the metadata key the gateway fills with the REST client's
// address. It is read only for REST calls, which reach the chain in this
// process (directConn, or the in-memory connection) from the gateway and the
// watch handler alone: a gRPC client cannot claim another address with it.
const clientAddrKey = "tokend-client-addr"

// routePatternKey is the metadata key the REST watch fills with its route
// pattern: its call reaches the chain over the in-memory connection, which
// does not carry the request's context, where gateway calls find theirs. It
// is read, like clientAddrKey, only for REST calls.
const routePatternKey = "tokend-route"

// observer logs and counts every call of the service, one line and one
// sample each, whichever transport it came by.
type observer struct {
	log *slog.Logger
	m   *metrics
	// rpcLogs are log, with the transport attribute added once: formatted
	// once per logger rather than per call, and one attribute fewer to
	// carry (a log record holds five without allocating).
	rpcLogs map[string]*slog.Logger
}

func newObserver(log *slog.Logger, m *metrics) *observer {
	o := &observer{log: log, m: m, rpcLogs: make(map[string]*slog.Logger)}
	for _, t := range []string{transportGRPC, transportREST} {
		o.rpcLogs[t] = log.With(slog.String("transport", t))
	}
	return o
}

// unary is the first interceptor of the chain: on the network gRPC server,
// and for REST calls in directConn (unary) and on the in-process gRPC
// server (streams).
func (o *observer) unary(transport string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		begin := time.Now()
		ctx, ci := callInfo(ctx, transport)
		resp, err := handler(ctx, req)
		o.rpcDone(ctx, transport, info.FullMethod, err, time.Since(begin), ci)
		return resp, err
	}
}

// stream is unary's counterpart for streaming calls: one line and one sample
// when the stream ends.
func (o *observer) stream(transport string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		begin := time.Now()
		ctx, ci := callInfo(ss.Context(), transport)
		err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
		o.rpcDone(ctx, transport, info.FullMethod, err, time.Since(begin), ci)
		return err
	}
}

// callInfo returns a context in which the service records what it learns of
// the call, with the client's address filled in.
func callInfo(ctx context.Context, transport string) (context.Context, *service.CallInfo) {
	ctx, ci := service.WithCallInfo(ctx)
	if transport == transportREST {
		if v := metadata.ValueFromIncomingContext(ctx, clientAddrKey); len(v) == 1 {
			ci.ClientAddr = v[0]
		}
	} else if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		ci.ClientAddr = hostOf(p.Addr.String())
	}
	return ctx, ci
}

// rpcDone logs a finished call (method, code, duration, caller token id;
// for REST the route pattern too; never a request or a secret) and counts
// it. A REST request whose call is logged here gets no second line from the
// HTTP observer.
func (o *observer) rpcDone(ctx context.Context, transport, method string, err error, took time.Duration, ci *service.CallInfo) {
	code := status.Code(err).String()
	o.m.observeRPC(transport, method, code, took)
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code),
		slog.Duration("duration", took),
		slog.String("caller", ci.CallerID),
	}
	if rt := routeFrom(ctx); rt != nil {
		rt.logged = true
		if rt.pattern == "" {
			rt.pattern, _ = runtime.HTTPPathPattern(ctx)
		}
		attrs = append(attrs, slog.String("route", rt.pattern))
	} else if transport == transportREST {
		if v := metadata.ValueFromIncomingContext(ctx, routePatternKey); len(v) == 1 {
			attrs = append(attrs, slog.String("route", v[0]))
		}
	}
	o.rpcLogs[transport].LogAttrs(ctx, slog.LevelInfo, "rpc", attrs...)
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// http counts every HTTP request and logs one line for each that logged
// no rpc line (method, the route pattern it matched, status, duration;
// never the path, which may hold what a client pasted into it, a body, a
// query or a header).
func (o *observer) http(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		rt := &route{}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		took := time.Since(begin)
		pattern := rt.pattern
		if pattern == "" {
			// The mux's pattern without its method ("GET /healthz"), as
			// the gateway writes its own.
			pattern = r.Pattern
			if i := strings.IndexByte(pattern, ' '); i >= 0 {
				pattern = pattern[i+1:]
			}
		}
		if pattern == "" {
			pattern = "other"
		}
		st := strconv.Itoa(sw.status)
		o.m.observeHTTP(pattern, st, took)
		if rt.logged {
			return
		}
		o.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("route", pattern),
			slog.Int("status", sw.status),
			slog.Duration("duration", took))
	})
}

// route is filled in while a request is handled: the pattern of the gateway
// route it matched, which the HTTP mux does not know, and whether the call
// it made logged its own line. REST calls reach the chain in process with
// the request's context, so the chain finds it there.
type route struct {
	pattern string
	logged  bool
}

type routeKey struct{}

func routeFrom(ctx context.Context) *route {
	r, _ := ctx.Value(routeKey{}).(*route)
	return r
}

// hostOf strips the port from a network address. The address is the
// connection's peer: forwarded-for headers are not trusted, since any client
// can set them.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed answers reach the client as they are written.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
