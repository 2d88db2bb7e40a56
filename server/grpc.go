package server

import (
	"context"
	"math"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	protobuf "google.golang.org/protobuf/proto"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

// One request pipeline: every call of the service, gRPC or REST, runs the
// same interceptor chain. gRPC clients reach it on the network server. The
// REST gateway reaches it through directConn, which runs unary calls through
// the chain in this process without encoding them, and passes streams to a
// second gRPC server on an in-memory connection, built from the same chain
// but without the network server's credentials and connection limits, which
// mean nothing there. Two HTTP routes call the service directly instead:
// POST /v1/tokens:introspect, the REST hot path (see introspectHandler), and
// forward auth under /v1/auth (see forwardAuth), which is not a call of the
// service's API.

// chain is the interceptor chain, for one transport label.
type chain struct {
	codec  serverCodec
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
}

func (o *observer) chain(transport string) chain {
	codec, undecodable := newServerCodec()
	return chain{
		codec:  codec,
		unary:  []grpc.UnaryServerInterceptor{o.unary(transport), rejectUndecodable(undecodable)},
		stream: []grpc.StreamServerInterceptor{o.stream(transport)},
	}
}

// newGRPCServer returns a gRPC server that serves svc through ch, with extra
// options (credentials, limits) after the chain's.
func newGRPCServer(svc tokenService, ch chain, extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(ch.codec),
		// Serve calls on long-lived workers instead of a new goroutine
		// each: a fresh goroutine grows (copies) its stack on every call,
		// which profiling showed to be a tenth of the CPU of a small RPC.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(ch.unary...),
		grpc.ChainStreamInterceptor(ch.stream...),
	}, extra...)
	gs := grpc.NewServer(opts...)
	gs.RegisterService(tokenServiceDesc(), svc)
	return gs
}

// tokenServiceDesc is the generated description of TokenService with the
// handler of IntrospectToken replaced by introspectMethod. directConn keeps
// the generated handlers.
func tokenServiceDesc() *grpc.ServiceDesc {
	d := tokendv1.TokenService_ServiceDesc
	d.Methods = slices.Clone(d.Methods)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "IntrospectToken" {
			d.Methods[i].Handler = introspectMethod
		}
	}
	return &d
}

// introspectMethod is the generated handler of IntrospectToken, but its
// answer comes from tokenService.introspectAnswer: most answers leave as
// the bytes the views keep for them (an encodedAnswer, which the server's
// codec sends as they are) rather than as a message encoded per call.
func introspectMethod(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(tokendv1.IntrospectTokenRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	t := srv.(tokenService)
	if interceptor == nil {
		return t.introspectAnswer(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: tokendv1.TokenService_IntrospectToken_FullMethodName}
	return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return t.introspectAnswer(ctx, req.(*tokendv1.IntrospectTokenRequest))
	})
}

// tokenService is the service as the transports serve it: IntrospectToken
// answers from the transport's cache of views instead of building a new one
// per call.
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

// introspectAnswer is IntrospectToken's answer as the gRPC server sends it:
// an *encodedAnswer or an *IntrospectTokenResponse.
func (t tokenService) introspectAnswer(ctx context.Context, req *tokendv1.IntrospectTokenRequest) (any, error) {
	in, err := t.Introspect(ctx, req)
	if err != nil {
		return nil, err
	}
	return t.views.answer(&in), nil
}

// inProcess is the gateway's way to the service: directConn for unary
// calls, and the in-memory connection to a gRPC server of its own for
// streams.
type inProcess struct {
	direct *directConn
	server *grpc.Server
	lis    *bufconn.Listener
	conn   *grpc.ClientConn
}

// inProcessBuffer is the in-memory connection's buffer in each direction.
const inProcessBuffer = 1 << 20

func startInProcess(svc tokenService, ch chain) (*inProcess, error) {
	p := &inProcess{server: newGRPCServer(svc, ch), lis: bufconn.Listen(inProcessBuffer)}
	go p.server.Serve(p.lis) // returns when the server stops
	var err error
	p.conn, err = grpc.NewClient("passthrough:///tokend-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return p.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The server side bounds what it sends; the gateway takes it all.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		p.server.Stop()
		return nil, err
	}
	p.direct = newDirectConn(svc, &tokendv1.TokenService_ServiceDesc, ch.unary, p.conn)
	return p, nil
}

// stop ends the in-process calls: gracefully until ctx is done, then cut off.
func (p *inProcess) stop(ctx context.Context) {
	p.direct.closed.Store(true)
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

// directConn is a grpc.ClientConnInterface that serves unary calls in this
// process: it runs the service's method handler, as generated, behind the
// unary chain, handing it a copy of the request and copying its answer
// back; the outgoing metadata of the caller becomes the incoming metadata
// of the call, as it would over the wire. Encoding and HTTP/2 framing
// cost a REST admin call more than the call itself; nothing else differs.
// Streams go to streams, the in-memory connection.
type directConn struct {
	srv     any
	methods map[string]grpc.MethodHandler // by full method name
	unary   grpc.UnaryServerInterceptor   // the chain, as one
	streams grpc.ClientConnInterface
	closed  atomic.Bool
}

func newDirectConn(srv any, sd *grpc.ServiceDesc, unary []grpc.UnaryServerInterceptor, streams grpc.ClientConnInterface) *directConn {
	c := &directConn{srv: srv, methods: make(map[string]grpc.MethodHandler), unary: chainUnary(unary), streams: streams}
	for _, m := range sd.Methods {
		c.methods["/"+sd.ServiceName+"/"+m.MethodName] = m.Handler
	}
	return c
}

func (c *directConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	if c.closed.Load() {
		return status.Error(codes.Unavailable, "shutting down")
	}
	handler, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	req, ok1 := args.(protobuf.Message)
	out, ok2 := reply.(protobuf.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "%s: not protobuf messages", method)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md)
	resp, err := handler(c.srv, ctx, func(in any) error {
		protobuf.Merge(in.(protobuf.Message), req)
		return nil
	}, c.unary)
	if err != nil {
		return err
	}
	protobuf.Reset(out)
	protobuf.Merge(out, resp.(protobuf.Message))
	return nil
}

func (c *directConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.streams.NewStream(ctx, desc, method, opts...)
}

// chainUnary makes one interceptor of several, the first outermost, as
// grpc.ChainUnaryInterceptor does for a server.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

// serverCodec is the protobuf codec of tokend's gRPC servers, with two
// differences. An encodedAnswer is sent as the bytes it holds. And a request
// it cannot decode gets InvalidArgument: gRPC answers a request it cannot
// decode (say, a string field holding invalid UTF-8) with Internal, before
// any interceptor runs, but for tokend's own messages that is the client's
// mistake, not ours. serverCodec keeps the decoding error beside the
// (reset) message instead of failing, and rejectUndecodable, in the chain,
// answers InvalidArgument with the decoder's words, which name the problem
// but repeat no value.
type serverCodec struct {
	encoding.CodecV2
	undecodable *undecodable
}

// undecodable holds a server's decoding errors of requests not yet rejected.
type undecodable struct {
	count  atomic.Int64 // lets the common case skip the map
	errors sync.Map     // proto.Message → error
}

func newServerCodec() (serverCodec, *undecodable) {
	u := &undecodable{}
	return serverCodec{CodecV2: encoding.GetCodecV2(proto.Name), undecodable: u}, u
}

// encodedAnswer is an answer already encoded. Its bytes are shared by every
// call that sends it: nothing may change them.
type encodedAnswer struct {
	bytes []byte
}

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if a, ok := v.(*encodedAnswer); ok {
		return mem.BufferSlice{mem.SliceBuffer(a.bytes)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
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

// rejectUndecodable fails the calls whose request serverCodec could not
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
