package server

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	protobuf "google.golang.org/protobuf/proto"
)

// gRPC answers a request it cannot decode (say, a string field holding
// invalid UTF-8) with Internal, before any interceptor runs. For tokend's
// own messages that is the client's mistake, not ours: requestCodec keeps
// the decoding error beside the (reset) message instead of failing, and
// rejectUndecodable, the first interceptor, answers InvalidArgument with the
// decoder's words, which name the field.
type requestCodec struct {
	encoding.CodecV2
	undecodable *undecodable
}

// undecodable holds the decoding errors of requests not yet rejected.
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

// strictJSON is the gateway's JSON marshaler with a decoder that refuses
// anything after the JSON value: by default the gateway decodes the first
// value of `{"name":"a"} {"name":"b"}` and ignores the rest.
type strictJSON struct {
	*runtime.JSONPb
}

func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		// The body is already capped by limitBody.
		body, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(body))) == 0 {
			return io.EOF // an empty body, which the gateway accepts
		}
		msg, ok := asMessage(v)
		if !ok {
			return m.JSONPb.Unmarshal(body, v)
		}
		// Unlike JSONPb.Unmarshal, protojson itself rejects trailing data.
		if err := m.UnmarshalOptions.Unmarshal(body, msg); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "proto: "))
		}
		return nil
	})
}

var messageType = reflect.TypeFor[protobuf.Message]()

// asMessage returns the message a gateway decode target stands for: the
// target itself, or, for a body bound to a message field (`body: token`), the
// message a **T points to, allocated if need be.
func asMessage(v any) (protobuf.Message, bool) {
	if msg, ok := v.(protobuf.Message); ok {
		return msg, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Pointer || !rv.Elem().Type().Implements(messageType) {
		return nil, false
	}
	if rv.Elem().IsNil() {
		rv.Elem().Set(reflect.New(rv.Elem().Type().Elem()))
	}
	return rv.Elem().Interface().(protobuf.Message), true
}
