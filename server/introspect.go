package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

const introspectRPC = "/tokend.v1.TokenService/IntrospectToken"

// introspectPattern is the gateway's pattern of the route introspectHandler
// stands in for.
const introspectPattern = "/v1/tokens:introspect"

// introspectHandler serves POST /v1/tokens:introspect, the REST hot path,
// without the gateway and the call through directConn behind it (routing,
// copying the request and the answer, marshalling the answer): those cost
// more than the introspection itself. It is the one route of the REST API
// that does not go through the interceptor chain (forward auth, beside it,
// is no call of the API), so it does what the chain does
// (records the client's address for damping, logs and counts the call) by
// the same functions, and answers exactly what the gateway route would: the
// same decoder, the same service method, the same error writer, and JSON
// spliced from answers restJSON marshalled. TestIntrospectDifferential
// sends both routes every case and compares the answers.
func introspectHandler(svc *service.Service, views *introspectViews, o *observer, errs *restErrors) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		if rt := routeFrom(r.Context()); rt != nil {
			rt.pattern = introspectPattern
		}
		ctx, ci := service.WithCallInfo(r.Context())
		ci.ClientAddr = hostOf(r.RemoteAddr)
		var req tokendv1.IntrospectTokenRequest
		var in service.Introspection
		err := restJSON.decode(r.Body, &req)
		if errors.Is(err, io.EOF) {
			err = nil // an empty body is an empty request
		}
		if err == nil {
			ctx = metadata.NewIncomingContext(ctx, metadata.MD{"authorization": r.Header.Values("Authorization")})
			in, err = svc.Introspect(ctx, &req)
			rpcErr := err
			defer func() { o.rpcDone(ctx, transportREST, introspectRPC, rpcErr, time.Since(begin), ci) }()
		}
		if err != nil {
			errs.gateway(ctx, w, r, err)
			return
		}
		buf := answerBuffers.Get().(*[]byte)
		defer answerBuffers.Put(buf)
		*buf, err = views.appendJSON((*buf)[:0], &in)
		if err != nil {
			errs.log.Error("introspection answer", slog.Any("error", err))
			errs.write(w, 0, status.New(codes.Internal, "internal error"))
			return
		}
		w.Header().Set("Content-Type", restJSON.ContentType(nil))
		w.Write(*buf)
	})
}

// answerBuffers holds the buffers answers are built in, so that a call
// allocates none.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
