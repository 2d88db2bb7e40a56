package client

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/bearer"
)

type resultKey struct{}

// FromContext returns the Result the middleware or an interceptor put in a
// request's context, and whether there is one. It is there only for requests
// that got through: an active token allowed the actions asked about.
func FromContext(ctx context.Context) (Result, bool) {
	r, ok := ctx.Value(resultKey{}).(*Result)
	if !ok {
		return Result{}, false
	}
	return *r, true
}

// verdict is the outcome of checking one request's credential.
type verdict int

const (
	granted       verdict = iota
	noCredential          // nothing to check: 401 without an error attribute
	badRequest            // several Authorization values: 400 invalid_request
	invalidToken          // 401 invalid_token
	deniedActions         // 403 insufficient_scope
	unavailable           // 503: tokend could not be asked
	internal              // 500: the caller's action mapping is wrong
)

// check verifies the bearer credential among the Authorization values for
// the actions, and returns the context to serve the request with.
func check(ctx context.Context, v *Verifier, values []string, actions []string) (context.Context, verdict, Result) {
	switch len(values) {
	case 0:
		return ctx, noCredential, Result{}
	case 1:
	default:
		return ctx, badRequest, Result{}
	}
	secret, ok := bearer.Token(values[0])
	if !ok {
		return ctx, noCredential, Result{}
	}
	res, err := v.Verify(ctx, secret, actions...)
	switch {
	case errors.Is(err, ErrInvalidAction):
		return ctx, internal, res
	case err != nil:
		return ctx, unavailable, res
	case !res.Active:
		return ctx, invalidToken, res
	case !res.Allowed:
		return ctx, deniedActions, res
	}
	return context.WithValue(ctx, resultKey{}, &res), granted, res
}

// HTTPMiddleware guards an HTTP handler: it reads the "Authorization: Bearer"
// credential, verifies it with v for the actions the request needs
// (actions may be nil: any active token passes), puts the Result in the
// request's context (FromContext) and calls next. Otherwise it answers as
// RFC 6750 says, with a WWW-Authenticate challenge of realm "tokend": 401
// without an error attribute when no bearer credential was sent, 401
// error="invalid_token" for a malformed, unknown or expired one, 403
// error="insufficient_scope" (with the refused actions as scope) when an
// action is not allowed, 400 error="invalid_request" for several
// Authorization headers. 503 when tokend cannot be asked (callers fail
// closed), 500 when actions returns an invalid action id.
func HTTPMiddleware(v *Verifier, actions func(*http.Request) []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var acts []string
			if actions != nil {
				acts = actions(r)
			}
			ctx, vd, res := check(r.Context(), v, r.Header.Values("Authorization"), acts)
			switch vd {
			case granted:
				next.ServeHTTP(w, r.WithContext(ctx))
			case noCredential:
				refuse(w, http.StatusUnauthorized, `Bearer realm="tokend"`, "a bearer token is required")
			case badRequest:
				refuse(w, http.StatusBadRequest, `Bearer realm="tokend", error="invalid_request"`, "send exactly one Authorization header")
			case invalidToken:
				refuse(w, http.StatusUnauthorized, `Bearer realm="tokend", error="invalid_token", error_description="`+reasonText(res.InactiveReason)+`"`, "invalid token: "+reasonText(res.InactiveReason))
			case deniedActions:
				refuse(w, http.StatusForbidden, `Bearer realm="tokend", error="insufficient_scope", scope="`+strings.Join(res.DeniedActions, " ")+`"`,
					"the token may not "+strings.Join(res.DeniedActions, ", "))
			case unavailable:
				if r.Context().Err() != nil {
					return // the client left
				}
				refuse(w, http.StatusServiceUnavailable, "", "token verification unavailable")
			default:
				refuse(w, http.StatusInternalServerError, "", "internal error")
			}
		})
	}
}

func refuse(w http.ResponseWriter, code int, challenge, msg string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}

func reasonText(r tokendv1.InactiveReason) string {
	switch r {
	case tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED:
		return "malformed"
	case tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED:
		return "expired"
	}
	return "unknown"
}

// grpcCheck verifies the "authorization" metadata of an incoming call.
func grpcCheck(ctx context.Context, v *Verifier, fullMethod string, actions func(string) []string) (context.Context, error) {
	var acts []string
	if actions != nil {
		acts = actions(fullMethod)
	}
	ctx, vd, res := check(ctx, v, metadata.ValueFromIncomingContext(ctx, "authorization"), acts)
	switch vd {
	case granted:
		return ctx, nil
	case noCredential:
		return ctx, status.Error(codes.Unauthenticated, "a bearer token is required")
	case badRequest:
		return ctx, status.Error(codes.Unauthenticated, "send exactly one authorization value")
	case invalidToken:
		return ctx, status.Error(codes.Unauthenticated, "invalid token: "+reasonText(res.InactiveReason))
	case deniedActions:
		return ctx, status.Error(codes.PermissionDenied, "the token may not "+strings.Join(res.DeniedActions, ", "))
	case unavailable:
		return ctx, status.Error(codes.Unavailable, "token verification unavailable")
	}
	return ctx, status.Error(codes.Internal, "internal error")
}

// UnaryServerInterceptor guards a gRPC server's unary calls: it verifies the
// "authorization: Bearer" metadata with v for the actions the method needs
// (actions may be nil) and puts the Result in the call's context
// (FromContext). It answers Unauthenticated for a missing, malformed,
// unknown or expired token, PermissionDenied when an action is not allowed,
// Unavailable when tokend cannot be asked, Internal when actions returns an
// invalid action id.
func UnaryServerInterceptor(v *Verifier, actions func(fullMethod string) []string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := grpcCheck(ctx, v, info.FullMethod, actions)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls: the
// check happens once, when the stream opens.
func StreamServerInterceptor(v *Verifier, actions func(fullMethod string) []string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := grpcCheck(ss.Context(), v, info.FullMethod, actions)
		if err != nil {
			return err
		}
		return handler(srv, &verifiedStream{ServerStream: ss, ctx: ctx})
	}
}

// verifiedStream is a server stream whose context carries the Result.
type verifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *verifiedStream) Context() context.Context { return s.ctx }
