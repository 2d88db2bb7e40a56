package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

const introspectRPC = "/tokend.v1.TokenService/IntrospectToken"

// introspectHandler serves POST /v1/tokens:introspect, the REST hot path,
// without the gateway: the gateway's per-call reflection (metadata
// annotation, protojson marshalling of the whole response) cost more than
// the introspection itself. It answers exactly what the gateway route
// would, and reaches the same authorization: the credential travels as the
// same "authorization" metadata into the same service method. The tests
// compare both routes.
func introspectHandler(svc *service.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := routeFrom(r.Context()); rt != nil {
			rt.rpc = introspectRPC
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
				return
			}
			writeError(w, http.StatusBadRequest, codes.InvalidArgument, "reading the request body: "+err.Error())
			return
		}
		var req tokendv1.IntrospectTokenRequest
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := (protojson.UnmarshalOptions{}).Unmarshal(body, &req); err != nil {
				writeError(w, http.StatusBadRequest, codes.InvalidArgument, strings.TrimPrefix(err.Error(), "proto: "))
				return
			}
		}
		ctx := metadata.NewIncomingContext(r.Context(), metadata.MD{"authorization": r.Header.Values("Authorization")})
		out, err := svc.IntrospectTokenJSON(ctx, &req)
		if err != nil {
			writeStatus(w, status.Convert(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
}

// writeStatus answers with a gRPC status the way the gateway does: the
// mapped HTTP status and the status as JSON.
func writeStatus(w http.ResponseWriter, st *status.Status) {
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", st.Message())
	}
	writeJSONStatus(w, runtime.HTTPStatusFromCode(st.Code()), st)
}
