package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/bearer"
	"github.com/tokend/tokend/server/authroutes"
	"github.com/tokend/tokend/service"
)

// ForwardAuthPath is where reverse proxies ask whether to let a request
// through (nginx auth_request, Caddy forward_auth, Traefik ForwardAuth;
// Envoy's ext_authz appends the original path to it).
const ForwardAuthPath = "/v1/auth"

// ProxyCredentialHeader carries the proxy's own admin credential, so that
// the client's Authorization header can travel untouched.
const ProxyCredentialHeader = "X-Tokend-Authorization"

// The headers a 200 answer gives the proxy to pass upstream. They are sent
// on every 200, empty when no token was checked (a public route), so that a
// proxy copying them always overwrites whatever the client sent under the
// same names.
const (
	headerTokenID   = "X-Token-Id"
	headerTokenName = "X-Token-Name"
	headerTokenKind = "X-Token-Kind"
	headerTokenType = "X-Token-Type"
)

// forwardAuth answers /v1/auth: may the request a proxy describes go
// through? It maps the original method and path to actions with the route
// table and checks the client's token against them as Introspect does, on
// behalf of the proxy, which authenticates with an admin token allowed to
// introspect. Safe for concurrent use; the table can be swapped while it
// serves.
type forwardAuth struct {
	svc    *service.Service
	log    *slog.Logger
	routes atomic.Pointer[authroutes.Table] // nil: no table, every request denied
}

func newForwardAuth(svc *service.Service, log *slog.Logger) *forwardAuth {
	return &forwardAuth{svc: svc, log: log}
}

// authVerdict is what forward auth needs to know of an introspection.
type authVerdict struct {
	active, allowed bool
	id, name        string
	kind, typ       string
}

// introspectForAuth is forward auth's one call into the service: it
// authenticates the proxy (its credential is in ctx's "authorization"
// metadata) and checks secret against actions, counting the token's use,
// exactly as Introspect does. Its errors are Introspect's: Unauthenticated
// or PermissionDenied for the proxy's credential, ResourceExhausted when the
// proxy's address is damped, Unavailable when the index may be stale.
func introspectForAuth(ctx context.Context, svc *service.Service, secret string, actions []string) (authVerdict, error) {
	in, err := svc.Introspect(ctx, &tokendv1.IntrospectTokenRequest{Token: secret, Actions: actions})
	if err != nil || in.Token == nil {
		return authVerdict{}, err
	}
	t := in.Token
	return authVerdict{
		active: true, allowed: in.Allowed(),
		id: t.ID(), name: t.Name(), kind: t.Kind().String(), typ: t.Type().String(),
	}, nil
}

// mount serves forward auth on mux: at ForwardAuthPath, where the original
// request is described by headers, and below it, where Envoy's ext_authz
// puts the original path (sending the original method).
func (f *forwardAuth) mount(mux *http.ServeMux) {
	mux.Handle(ForwardAuthPath, f)
	mux.Handle(ForwardAuthPath+"/", f)
}

// originalHeaders are the headers that describe the original request.
var originalHeaders = []string{"X-Forwarded-Method", "X-Original-Method", "X-Forwarded-Uri", "X-Original-URI"}

func (f *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, uri, problem := originalRequest(r)
	if problem != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(problem + "\n"))
		return
	}
	f.serve(w, r, method, uri)
}

// originalRequest returns the method and URI of the request the proxy asks
// about, or what is wrong with how it describes it.
func originalRequest(r *http.Request) (method, uri, problem string) {
	if suffix, ok := strings.CutPrefix(r.URL.EscapedPath(), ForwardAuthPath+"/"); ok {
		// The original request is in the method and path: the headers
		// must not say otherwise.
		for _, h := range originalHeaders {
			if _, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
				return "", "", h + " given with the original path after " + ForwardAuthPath + "/: send one or the other"
			}
		}
		return r.Method, "/" + suffix, ""
	}
	if method, problem = forwardedHeader(r.Header, "X-Forwarded-Method", "X-Original-Method"); problem != "" {
		return "", "", problem
	}
	uri, problem = forwardedHeader(r.Header, "X-Forwarded-Uri", "X-Original-URI")
	return method, uri, problem
}

// forwardedHeader reads the original method or URI, which Caddy and Traefik
// send under one name and nginx (as configured) under the other. Proxies
// pass the client's own headers along, so a client can send either name
// itself: when both are present they must agree, or a client behind nginx
// could describe a harmless request in X-Forwarded-Uri while asking for
// another.
func forwardedHeader(h http.Header, name, alt string) (string, string) {
	a, b := h.Values(name), h.Values(alt)
	switch {
	case len(a) == 0 && len(b) == 0:
		return "", "missing " + name + " or " + alt + ": the proxy must say which request it asks about"
	case len(a) > 1 || len(b) > 1:
		return "", "several values of " + name + " or " + alt
	case len(a) == 1 && len(b) == 1 && a[0] != b[0]:
		return "", name + " and " + alt + " disagree"
	case len(a) == 1:
		return a[0], ""
	}
	return b[0], ""
}

func (f *forwardAuth) serve(w http.ResponseWriter, r *http.Request, method, uri string) {
	rule := f.routes.Load().Match(method, uri)
	secret, sent, ok := clientToken(r.Header)
	var actions []string
	if rule != nil && !rule.Public && ok {
		actions = rule.Actions
	} else {
		// No token to check, but the proxy must still prove who it is:
		// the answer would otherwise tell anyone the route table.
		secret = ""
	}
	ctx := metadata.NewIncomingContext(r.Context(), metadata.MD{"authorization": r.Header.Values(ProxyCredentialHeader)})
	// Failed proxy credentials are damped per address, like any other.
	ctx, ci := service.WithCallInfo(ctx)
	ci.ClientAddr = hostOf(r.RemoteAddr)
	v, err := introspectForAuth(ctx, f.svc, secret, actions)
	if err != nil {
		f.refuseProxy(w, r, err)
		return
	}
	h := w.Header()
	switch {
	case rule == nil:
		h.Set("WWW-Authenticate", `Bearer realm="tokend", error="insufficient_scope"`)
		w.WriteHeader(http.StatusForbidden)
	case rule.Public:
		setIdentity(h, authVerdict{})
		w.WriteHeader(http.StatusOK)
	case !sent:
		h.Set("WWW-Authenticate", `Bearer realm="tokend"`)
		w.WriteHeader(http.StatusUnauthorized)
	case !v.active:
		h.Set("WWW-Authenticate", `Bearer realm="tokend", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	case !v.allowed:
		h.Set("WWW-Authenticate", `Bearer realm="tokend", error="insufficient_scope"`)
		w.WriteHeader(http.StatusForbidden)
	default:
		setIdentity(h, v)
		w.WriteHeader(http.StatusOK)
	}
}

// clientToken reads the client's "Authorization: Bearer <token>". sent is
// false when the client sent no Authorization at all; ok is false when it
// sent none or something that is not one bearer token.
func clientToken(h http.Header) (secret string, sent, ok bool) {
	values := h.Values("Authorization")
	if len(values) != 1 {
		return "", len(values) > 0, false
	}
	secret, ok = bearer.Token(values[0])
	return secret, true, ok
}

func setIdentity(h http.Header, v authVerdict) {
	h[headerTokenID] = []string{v.id}
	h[headerTokenName] = []string{v.name}
	h[headerTokenKind] = []string{v.kind}
	h[headerTokenType] = []string{v.typ}
}

// refuseProxy answers a call whose proxy credential failed. Every refusal
// of the proxy is a 401, damped or not: damping never refuses a valid
// credential, so on this path it could only turn an answer that was already
// a refusal into a 429, and behind nginx (which turns any status but 2xx,
// 401 and 403 into a 500) or Caddy (which passes it on) that would reach the
// proxy's clients as a server fault or a rate limit they did not cause. The
// 401 keeps the cause visible to the operator instead: a body and a log line
// naming the proxy's credential (and, while the address is damped, saying
// so). Failures still count towards damping on tokend's other endpoints.
func (f *forwardAuth) refuseProxy(w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
	default:
		f.log.Error("forward auth", slog.Any("error", err))
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	f.log.Warn("forward auth: the proxy's credential was refused; check the "+ProxyCredentialHeader+" header the proxy sends",
		slog.String("proxy", hostOf(r.RemoteAddr)), slog.String("reason", st.Message()))
	h := w.Header()
	h.Set("WWW-Authenticate", `Bearer realm="tokend-proxy"`)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("the proxy's credential (" + ProxyCredentialHeader + ") was refused: " + st.Message() + "\n"))
}

// loadAuthRoutes reads the route table file and swaps it in. On error the
// table in use stays.
func (f *forwardAuth) loadAuthRoutes(file string) (int, error) {
	if file == "" {
		return 0, errors.New("no route table file configured (-auth-routes)")
	}
	t, err := authroutes.Load(file)
	if err != nil {
		return 0, err
	}
	f.routes.Store(t)
	return len(t.Rules()), nil
}
