package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/service"
)

// unaryObserver logs one line per gRPC call (method, code, duration, caller
// token id; never a request or a secret) and counts it.
func unaryObserver(log *slog.Logger, m *metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		begin := time.Now()
		ctx, ci := service.WithCallInfo(ctx)
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			ci.ClientAddr = hostOf(p.Addr.String())
		}
		resp, err := handler(ctx, req)
		took := time.Since(begin)
		code := status.Code(err).String()
		m.observe("grpc", info.FullMethod, code, took)
		log.LogAttrs(ctx, slog.LevelInfo, "grpc request",
			slog.String("method", info.FullMethod),
			slog.String("code", code),
			slog.Duration("duration", took),
			slog.String("caller", ci.CallerID))
		return resp, err
	}
}

// route is filled in while the gateway handles a request: which RPC it
// mapped to. The observer reads it after the request.
type route struct {
	rpc string
}

type routeKey struct{}

func routeFrom(ctx context.Context) *route {
	r, _ := ctx.Value(routeKey{}).(*route)
	return r
}

// observeHTTP logs one line per HTTP request (method, path, status, RPC,
// duration, caller token id; never a body, a query or a header) and counts
// it.
func observeHTTP(log *slog.Logger, m *metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		ctx, ci := service.WithCallInfo(r.Context())
		ci.ClientAddr = hostOf(r.RemoteAddr)
		rt := &route{}
		ctx = context.WithValue(ctx, routeKey{}, rt)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		took := time.Since(begin)
		method := rt.rpc
		if method == "" {
			method = r.URL.Path
			if len(method) > 64 || !isKnownPath(method) {
				method = "other"
			}
		}
		m.observe("http", method, strconv.Itoa(sw.status), took)
		log.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("rpc", rt.rpc),
			slog.Int("status", sw.status),
			slog.Duration("duration", took),
			slog.String("caller", ci.CallerID))
	})
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

// isKnownPath keeps metric labels bounded: only fixed paths become labels.
func isKnownPath(p string) bool {
	switch p {
	case "/healthz", "/readyz", "/metrics", "/openapi.json", "/":
		return true
	}
	return false
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

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
