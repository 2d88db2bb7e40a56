package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	protobuf "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

// One request pipeline: every call of the service, gRPC or REST, runs the
// same interceptor chain. gRPC clients reach it on the network server; the
// REST gateway reaches it as a gRPC client of a second server on an
// in-memory connection, built from the same chain but without the network
// server's credentials and connection limits, which mean nothing there. The
// one exception is POST /v1/tokens:introspect, the REST hot path, which calls
// the service directly (see introspectHandler).

// newGRPCServer returns a gRPC server that serves svc through the chain,
// labelled transport in logs and metrics, with extra options (credentials,
// limits) after the chain's.
func newGRPCServer(svc tokendv1.TokenServiceServer, o *observer, transport string, extra ...grpc.ServerOption) *grpc.Server {
	codec, undecodable := newRequestCodec()
	opts := append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(codec),
		// Serve calls on long-lived workers instead of a new goroutine
		// each: a fresh goroutine grows (copies) its stack on every call,
		// which profiling showed to be a tenth of the CPU of a small RPC.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(o.unary(transport), rejectUndecodable(undecodable)),
		grpc.ChainStreamInterceptor(o.stream(transport)),
	}, extra...)
	gs := grpc.NewServer(opts...)
	tokendv1.RegisterTokenServiceServer(gs, svc)
	return gs
}

// tokenService is the service as both gRPC servers register it:
// IntrospectToken answers from the transport's cache of views instead of
// building a new one per call.
type tokenService struct {
	*service.Service
	views *introspectViews
}

func (t tokenService) IntrospectToken(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (*tokendv1.IntrospectTokenResponse, error) {
	in, err := t.Introspect(ctx, req)
	if err != nil {
		return nil, err
	}
	return t.views.response(&in), nil
}

// inProcess is the in-memory connection between the gateway and its gRPC
// server.
type inProcess struct {
	server *grpc.Server
	lis    *bufconn.Listener
	conn   *grpc.ClientConn
}

// inProcessBuffer is the in-memory connection's buffer in each direction.
const inProcessBuffer = 1 << 20

func startInProcess(gs *grpc.Server) (*inProcess, error) {
	p := &inProcess{server: gs, lis: bufconn.Listen(inProcessBuffer)}
	go gs.Serve(p.lis) // returns when the server stops
	var err error
	p.conn, err = grpc.NewClient("passthrough:///tokend-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return p.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The server side bounds what it sends; the gateway takes it all.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
		grpc.WithUnaryInterceptor(refuseUnencodable),
	)
	if err != nil {
		gs.Stop()
		return nil, err
	}
	return p, nil
}

// stop ends the in-process calls: gracefully until ctx is done, then cut off.
func (p *inProcess) stop(ctx context.Context) {
	p.conn.Close()
	stopServer(ctx, p.server)
}

func stopServer(ctx context.Context, gs *grpc.Server) {
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		gs.Stop()
		<-stopped
	}
}

// refuseUnencodable answers InvalidArgument, naming the field, when the
// gateway built a request the in-process call cannot encode: a path or query
// parameter that is not valid UTF-8 lands in a string field, which protobuf
// refuses to marshal, and gRPC calls that Internal. It is the client's
// mistake, as it would be over gRPC.
func refuseUnencodable(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if status.Code(err) != codes.Internal {
		return err
	}
	m, ok := req.(protobuf.Message)
	if !ok {
		return err
	}
	if field := invalidUTF8Field(m.ProtoReflect()); field != "" {
		return invalidArgument(field, "not valid UTF-8")
	}
	return err
}

// invalidUTF8Field returns the path of the first string field of m that is
// not valid UTF-8, or "".
func invalidUTF8Field(m protoreflect.Message) string {
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if sub := invalidUTF8Value(fd, l.Get(i)); sub != "\x00" {
					found = joinPath(name, fmt.Sprintf("[%d]", i)+dotted(sub))
					return false
				}
			}
		case fd.IsMap():
		default:
			if sub := invalidUTF8Value(fd, v); sub != "\x00" {
				found = joinPath(name, sub)
				return false
			}
		}
		return true
	})
	return found
}

// invalidUTF8Value returns "" when v itself is a string that is not valid
// UTF-8, the path inside it when v is a message holding one, and "\x00"
// when it holds none.
func invalidUTF8Value(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return ""
		}
	case protoreflect.MessageKind:
		if sub := invalidUTF8Field(v.Message()); sub != "" {
			return sub
		}
	}
	return "\x00"
}

func dotted(sub string) string {
	if sub == "" {
		return ""
	}
	return "." + sub
}

// invalidArgument is an InvalidArgument status with a google.rpc.BadRequest
// naming field.
func invalidArgument(field, problem string) error {
	st := status.New(codes.InvalidArgument, "invalid request: "+field+": "+problem)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: problem},
	}}); err == nil {
		st = d
	}
	return st.Err()
}

// gRPC answers a request it cannot decode (say, a string field holding
// invalid UTF-8) with Internal, before any interceptor runs. For tokend's
// own messages that is the client's mistake, not ours: requestCodec keeps
// the decoding error beside the (reset) message instead of failing, and
// rejectUndecodable, in the chain, answers InvalidArgument with the
// decoder's words, which name the problem but repeat no value.
type requestCodec struct {
	encoding.CodecV2
	undecodable *undecodable
}

// undecodable holds a server's decoding errors of requests not yet rejected.
type undecodable struct {
	count  atomic.Int64 // lets the common case skip the map
	errors sync.Map     // proto.Message → error
}

func newRequestCodec() (requestCodec, *undecodable) {
	u := &undecodable{}
	return requestCodec{CodecV2: encoding.GetCodecV2(proto.Name), undecodable: u}, u
}

func (c requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(protobuf.Message)
	if !ok || !strings.HasPrefix(string(m.ProtoReflect().Descriptor().FullName()), "tokend.v1.") {
		return err
	}
	protobuf.Reset(m)
	c.undecodable.errors.Store(m, err)
	c.undecodable.count.Add(1)
	return nil
}

// rejectUndecodable fails the calls whose request requestCodec could not
// decode.
func rejectUndecodable(u *undecodable) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if u.count.Load() > 0 {
			if err, ok := u.errors.LoadAndDelete(req); ok {
				u.count.Add(-1)
				return nil, status.Error(codes.InvalidArgument, "invalid request: "+err.(error).Error())
			}
		}
		return handler(ctx, req)
	}
}
