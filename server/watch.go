package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// watchPattern is the route pattern of the REST watch, in the log and
// metrics, written as the gateway writes its own.
const watchPattern = "/v1/tokens:watch"

// watchHandler serves GET /v1/tokens:watch in the gateway's format for
// server streams: newline-delimited JSON, one {"result": event} per line,
// flushed as sent. The call goes over the in-process connection, so it runs
// the same interceptor chain (log line, metrics, client address for
// damping) as every other call, and the request gets no second log line
// from the HTTP observer. Unlike the gateway's own stream forwarding,
// an error before the first event is answered like any other REST error,
// with its HTTP status (401, 403, 400…) and JSON body: a client sees a
// refused watch as refused. A later error ends the stream with an
// {"error": status} line.
func watchHandler(conn grpc.ClientConnInterface, errs *restErrors) http.Handler {
	client := tokendv1.NewTokenServiceClient(conn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := routeFrom(r.Context())
		if rt != nil {
			rt.pattern = watchPattern
		}
		var req tokendv1.WatchTokensRequest
		for k, v := range r.URL.Query() {
			switch {
			case k != "resume_token" && k != "resumeToken":
				errs.write(w, 0, invalidQuery(k, "unknown query parameter"))
				return
			case len(v) != 1:
				errs.write(w, 0, invalidQuery("resume_token", "given more than once"))
				return
			}
			req.ResumeToken = v[0]
		}
		// A watch lasts as long as the client wants: no write deadline
		// made for a request and its answer may cut it.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})

		md := metadata.Pairs(clientAddrKey, hostOf(r.RemoteAddr), routePatternKey, watchPattern)
		for _, v := range r.Header.Values("Authorization") {
			md.Append("authorization", v)
		}
		ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(r.Context(), md))
		defer cancel()
		stream, err := client.WatchTokens(ctx, &req)
		if err == nil && rt != nil {
			rt.logged = true // by the chain, when the call ends
		}
		started := false
		for err == nil {
			var ev *tokendv1.WatchTokensResponse
			if ev, err = stream.Recv(); err != nil {
				break
			}
			if !started {
				w.Header().Set("Content-Type", restJSON.StreamContentType(nil))
				started = true
			}
			if err = writeLine(w, rc, "result", ev); err != nil {
				return // the client went away
			}
		}
		if errors.Is(err, io.EOF) || r.Context().Err() != nil {
			return
		}
		st := status.Convert(err)
		if !started {
			errs.write(w, 0, st)
			return
		}
		if err := writeLine(w, rc, "error", st.Proto()); err != nil {
			errs.log.Debug("watch ended", slog.Any("error", err))
		}
	})
}

// invalidQuery is the InvalidArgument of a bad query parameter, naming it.
func invalidQuery(param, problem string) *status.Status {
	return status.Newf(codes.InvalidArgument, "%s: %s", param, problem)
}

// writeLine writes {"<key>": m} and a newline in the REST JSON dialect, and
// flushes it to the client.
func writeLine(w http.ResponseWriter, rc *http.ResponseController, key string, m proto.Message) error {
	body, err := restJSON.Marshal(m)
	if err != nil {
		return err
	}
	b := make([]byte, 0, len(body)+len(key)+6)
	b = append(b, `{"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	b = append(b, body...)
	b = append(b, "}\n"...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return rc.Flush()
}
