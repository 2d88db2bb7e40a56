package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokend/tokend"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/web"
)

// httpDeps is what the HTTP interface is built from.
type httpDeps struct {
	svc     *service.Service
	conn    grpc.ClientConnInterface // to the service in this process: inProcess.direct
	views   *introspectViews
	obs     *observer
	maxBody int64
	auth    *forwardAuth // nil: no /v1/auth
	// gatewayOnly leaves out the introspection fast path, so that the
	// generated gateway route serves it: tests compare the two.
	gatewayOnly bool
}

// newHTTPHandler returns tokend's HTTP interface: the REST gateway under
// /v1/, /healthz, /readyz, /metrics, /openapi.json, and the web console at /.
func newHTTPHandler(ctx context.Context, d httpDeps) (http.Handler, error) {
	errs, err := newRESTErrors(d.obs.log)
	if err != nil {
		return nil, err
	}
	gateway := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restJSON),
		// Only the Authorization header becomes metadata (the gateway passes
		// it through by itself); nothing else a client sends does, so no
		// other header can smuggle in a second credential.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		// The client's address, for damping failed authentications: the
		// chain cannot see it otherwise. Annotations replace
		// whatever a client sent under the same key.
		runtime.WithMetadata(func(_ context.Context, r *http.Request) metadata.MD {
			return metadata.Pairs(clientAddrKey, hostOf(r.RemoteAddr))
		}),
		runtime.WithRoutingErrorHandler(errs.routing),
		runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			notePattern(ctx)
			errs.gateway(ctx, w, r, err)
		}),
		runtime.WithForwardResponseOption(func(ctx context.Context, _ http.ResponseWriter, _ proto.Message) error {
			notePattern(ctx)
			return nil
		}),
	)
	if err := tokendv1.RegisterTokenServiceHandlerClient(ctx, gateway, tokendv1.NewTokenServiceClient(d.conn)); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", requireCredential(d.svc, errs, limitBody(d.maxBody, errs, gateway)))
	if !d.gatewayOnly {
		mux.Handle("POST /v1/tokens:introspect", requireCredential(d.svc, errs, limitBody(d.maxBody, errs, introspectHandler(d.svc, d.views, d.obs, errs))))
	}
	if d.auth != nil {
		d.auth.mount(mux)
	}
	mux.Handle("GET /v1/tokens:watch", watchHandler(d.conn, errs))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.svc.Ready(r.Context()); err != nil {
			d.obs.log.Warn("not ready", slog.Any("error", err))
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: store unavailable\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", d.obs.m.handler())
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(tokend.OpenAPI)
	})
	mux.Handle("/", onlyGet(errs, web.Handler(web.Options{Lifespans: d.svc.Lifespans()})))
	return d.obs.http(securityHeaders(mux)), nil
}

// onlyGet answers 405 to any method but GET and HEAD. The console is
// mounted at "/", so it also catches wrong methods on the fixed paths
// (POST /healthz): they get 405 rather than the console's 404.
func onlyGet(errs *restErrors, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			errs.methodNotAllowed(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// notePattern records the pattern of the gateway route a request matched,
// for the request log and metrics.
func notePattern(ctx context.Context) {
	if rt := routeFrom(ctx); rt != nil {
		if p, ok := runtime.HTTPPathPattern(ctx); ok {
			rt.pattern = p
		}
	}
}

// restErrors writes every REST error answer: the gateway's JSON error shape
// (a google.rpc.Status marshalled by restJSON), with the HTTP status the
// gateway maps its code to, WWW-Authenticate on Unauthenticated and
// Retry-After when the status carries a google.rpc.RetryInfo.
type restErrors struct {
	log *slog.Logger
	// internal is the answer when a status cannot be marshalled.
	internal []byte
}

func newRESTErrors(log *slog.Logger) (*restErrors, error) {
	internal, err := restJSON.Marshal(status.New(codes.Internal, "internal error").Proto())
	if err != nil {
		return nil, fmt.Errorf("marshal the internal error answer: %w", err)
	}
	return &restErrors{log: log, internal: internal}, nil
}

// write answers with st and the HTTP status the gateway maps its code to,
// or httpStatus when not 0.
func (e *restErrors) write(w http.ResponseWriter, httpStatus int, st *status.Status) {
	if httpStatus == 0 {
		httpStatus = httpStatusOf(st.Code())
	}
	body, err := restJSON.Marshal(st.Proto())
	if err != nil {
		e.log.Error("marshal an error answer", slog.String("code", st.Code().String()), slog.Any("error", err))
		httpStatus, body = http.StatusInternalServerError, e.internal
	}
	h := w.Header()
	h.Set("Content-Type", restJSON.ContentType(nil))
	if st.Code() == codes.Unauthenticated {
		h.Set("WWW-Authenticate", st.Message())
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			secs := ri.GetRetryDelay().AsDuration().Seconds()
			h.Set("Retry-After", strconv.Itoa(max(1, int(secs+0.999))))
		}
	}
	w.WriteHeader(httpStatus)
	w.Write(body)
}

// httpStatusOf is the HTTP status of a gRPC code: the gateway's mapping,
// except FailedPrecondition (a write refused because of the state it would
// leave, such as removing the last owner, or a full catalog), which is a
// conflict with the resource's state: 409, not the gateway's 400.
func httpStatusOf(c codes.Code) int {
	if c == codes.FailedPrecondition {
		return http.StatusConflict
	}
	return runtime.HTTPStatusFromCode(c)
}

// gateway answers an error of a gateway route, or of the introspection fast
// path: a body that did not decode, or the error of the call.
func (e *restErrors) gateway(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	// The gateway passes on only the text of a reading or decoding
	// error: the body records the first, and the text of the second is
	// made to be read back.
	if rb, ok := r.Body.(*requestBody); ok && rb.tooLarge != nil {
		e.write(w, http.StatusRequestEntityTooLarge, status.Newf(codes.ResourceExhausted, "request body larger than %d bytes", rb.tooLarge.Limit))
		return
	}
	var bad *bodyError
	if !errors.As(err, &bad) {
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || len(st.Details()) > 0 {
			e.write(w, 0, st)
			return
		}
		var ok bool
		if bad, ok = parseBodyError(st.Message()); !ok {
			e.write(w, 0, st)
			return
		}
	}
	e.write(w, 0, bad.status(bodyField(ctx, bad.field)))
}

// routing answers requests the gateway has no route for: 405 (not the
// gateway's default 501) when the path exists under another method.
func (e *restErrors) routing(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		e.methodNotAllowed(w, r)
	case http.StatusNotFound:
		e.write(w, httpStatus, status.New(codes.NotFound, http.StatusText(httpStatus)))
	case http.StatusBadRequest:
		e.write(w, httpStatus, status.New(codes.InvalidArgument, http.StatusText(httpStatus)))
	default:
		e.write(w, http.StatusInternalServerError, status.New(codes.Internal, "unexpected routing error"))
	}
}

func (e *restErrors) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	e.write(w, http.StatusMethodNotAllowed, status.Newf(codes.Unimplemented, "method %s not allowed on this path", r.Method))
}

// bodyField returns the request field the route of ctx binds the body to
// (`body: token` makes it "token"), judged from where field, a path in the
// body, fits: "" when it names a field of the request itself (`body: "*"`),
// otherwise the one singular field of the request holding a message of ours.
func bodyField(ctx context.Context, field string) string {
	method, ok := runtime.RPCMethod(ctx) // "/tokend.v1.TokenService/CreateToken"
	if !ok {
		return ""
	}
	svcName, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svcName))
	if err != nil {
		return ""
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok || sd.Methods().ByName(protoreflect.Name(name)) == nil {
		return ""
	}
	in := sd.Methods().ByName(protoreflect.Name(name)).Input()
	first := field
	if i := strings.IndexAny(first, ".["); i >= 0 {
		first = first[:i]
	}
	if first != "" && in.Fields().ByName(protoreflect.Name(first)) != nil {
		return ""
	}
	var bound string
	for i := range in.Fields().Len() {
		f := in.Fields().Get(i)
		if f.Message() != nil && !f.IsList() && !f.IsMap() && f.Message().ParentFile().Package() == in.ParentFile().Package() {
			if bound != "" {
				return "" // two candidates: do not guess
			}
			bound = string(f.Name())
		}
	}
	return bound
}

// requestBody is a REST request body as limitBody passes it on: capped, and
// remembering that it crossed the cap.
type requestBody struct {
	io.ReadCloser
	tooLarge *http.MaxBytesError
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			b.tooLarge = tooLarge
		}
	}
	return n, err
}

// limitBody refuses bodies larger than max: announced ones with 413 before
// reading, others when the reader crosses the limit.
func limitBody(max int64, errs *restErrors, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			errs.write(w, http.StatusRequestEntityTooLarge, status.Newf(codes.ResourceExhausted, "request body larger than %d bytes", max))
			return
		}
		r.Body = &requestBody{ReadCloser: http.MaxBytesReader(w, r.Body, max)}
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
