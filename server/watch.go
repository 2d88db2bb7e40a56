package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

const watchRPC = "/tokend.v1.TokenService/WatchTokens"

// watchHandler serves GET /v1/tokens:watch in the gateway's format for
// server streams: newline-delimited JSON, one {"result": event} per line,
// flushed as sent. An error before the first event is answered like any
// other REST error (status and JSON body); a later one ends the stream with
// an {"error": status} line. The gateway's in-process registration cannot
// serve streams, hence this handler; it calls the same service method with
// the credential in the same "authorization" metadata as every other route.
func watchHandler(svc *service.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := routeFrom(r.Context()); rt != nil {
			rt.rpc = watchRPC
		}
		var req tokendv1.WatchTokensRequest
		for k, v := range r.URL.Query() {
			switch {
			case k != "resume_token" && k != "resumeToken":
				writeError(w, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("unknown query parameter %q", k))
				return
			case len(v) != 1:
				writeError(w, http.StatusBadRequest, codes.InvalidArgument, "resume_token given more than once")
				return
			}
			req.ResumeToken = v[0]
		}
		// A watch lasts as long as the client wants: no write deadline
		// that suits a request/response exchange may cut it.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		ctx := metadata.NewIncomingContext(r.Context(), metadata.MD{"authorization": r.Header.Values("Authorization")})
		stream := &ndjsonStream{ctx: ctx, w: w, rc: rc}
		err := svc.WatchTokens(&req, stream)
		if err == nil || r.Context().Err() != nil {
			return
		}
		st := status.Convert(err)
		if !stream.started {
			writeStatus(w, st)
			return
		}
		stream.line("error", st.Proto())
	})
}

// ndjsonStream is the server side of a WatchTokens stream written as
// newline-delimited JSON. Only Context and Send are used by the service.
type ndjsonStream struct {
	grpc.ServerStream
	ctx     context.Context
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (s *ndjsonStream) Context() context.Context { return s.ctx }

func (s *ndjsonStream) Send(ev *tokendv1.WatchTokensResponse) error {
	if !s.started {
		s.w.Header().Set("Content-Type", "application/x-ndjson")
		s.started = true
	}
	return s.line("result", ev)
}

// line writes {"<key>": m} and a newline, and flushes it to the client.
func (s *ndjsonStream) line(key string, m proto.Message) error {
	body, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return status.Error(codes.Internal, "internal error")
	}
	b := make([]byte, 0, len(body)+len(key)+6)
	b = append(b, `{"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	b = append(b, body...)
	b = append(b, "}\n"...)
	if _, err := s.w.Write(b); err != nil {
		return status.Error(codes.Unavailable, "client went away")
	}
	if err := s.rc.Flush(); err != nil {
		return status.Error(codes.Unavailable, "client went away")
	}
	return nil
}
