package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokend/tokend"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/web"
)

// NewHTTPHandler returns tokend's HTTP interface over svc: the REST gateway
// under /v1/, /healthz, /readyz, /metrics, /openapi.json, and the web console
// at /. It is what Start serves; tests use it under httptest.
func NewHTTPHandler(ctx context.Context, svc *service.Service, log *slog.Logger) (http.Handler, error) {
	return newHTTPHandler(ctx, svc, newMetrics(svc), log, DefaultMaxBodyBytes, newForwardAuth(svc, log))
}

func newHTTPHandler(ctx context.Context, svc *service.Service, m *metrics, log *slog.Logger, maxBody int64, auth *forwardAuth) (http.Handler, error) {
	gateway := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, strictJSON{&runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
			// Unknown fields are an error, not silently dropped: a typo in
			// a field name must not look like success.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		// Only the Authorization header becomes metadata (the gateway passes
		// it through by itself); nothing else a client sends does, so no
		// other header can smuggle in a second credential.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			noteRPC(ctx)
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
					fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
				return
			}
			// FailedPrecondition (a write refused because of the state it
			// would leave, such as removing the last owner) is a conflict
			// with the resource's state: 409, not the gateway's 400.
			if status.Code(err) == codes.FailedPrecondition {
				err = &runtime.HTTPStatusError{HTTPStatus: http.StatusConflict, Err: err}
			}
			runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		}),
		runtime.WithForwardResponseOption(func(ctx context.Context, _ http.ResponseWriter, _ proto.Message) error {
			noteRPC(ctx)
			return nil
		}),
	)
	// The in-process registration skips gRPC interceptors, which is why
	// authorization lives in the service methods themselves: both
	// transports reach the same checks.
	if err := tokendv1.RegisterTokenServiceHandlerServer(ctx, gateway, svc); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", limitBody(maxBody, gateway))
	mux.Handle("POST /v1/tokens:introspect", limitBody(maxBody, introspectHandler(svc)))
	auth.mount(mux)
	mux.Handle("GET /v1/tokens:watch", watchHandler(svc))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := svc.Ready(r.Context()); err != nil {
			log.Warn("not ready", slog.Any("error", err))
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: store unavailable\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", m)
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(tokend.OpenAPI)
	})
	mux.Handle("/", onlyGet(web.Handler(web.Options{Lifespans: svc.Lifespans()})))
	return observeHTTP(log, m, securityHeaders(requireCredential(svc, mux))), nil
}

// onlyGet answers 405 to any method but GET and HEAD. The console is
// mounted at "/", so it also catches wrong methods on the fixed paths
// (POST /healthz): they get 405 rather than the console's 404.
func onlyGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeMethodNotAllowed(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// noteRPC records which RPC the gateway mapped a request to.
func noteRPC(ctx context.Context) {
	if rt := routeFrom(ctx); rt != nil {
		if method, ok := runtime.RPCMethod(ctx); ok {
			rt.rpc = method
		}
	}
}

// routingError answers requests the gateway has no route for: 405 (not the
// gateway's default 501) when the path exists under another method.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		writeMethodNotAllowed(w, r)
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// writeError answers with the gateway's JSON error shape, for the errors the
// HTTP layer raises before a request reaches the gateway's own handler.
func writeError(w http.ResponseWriter, httpStatus int, code codes.Code, message string) {
	writeJSONStatus(w, httpStatus, status.New(code, message))
}

func writeJSONStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	body, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(st.Proto())
	if err != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(body)
}

func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, fmt.Sprintf("method %s not allowed on this path", r.Method))
}

// limitBody refuses bodies larger than max: announced ones with 413 before
// reading, others when the reader crosses the limit.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
				fmt.Sprintf("request body larger than %d bytes", max))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets headers every response should carry.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
