package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// restJSON is the JSON dialect of the REST interface, stated once: the
// gateway, the error writer and the introspection fast path all use this
// value. Answers are protojson with lowerCamel names, enum names and every
// field present; requests are decoded strictly (see strictJSON).
var restJSON = strictJSON{&runtime.JSONPb{
	MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
	// Unknown fields are an error, not silently dropped: a typo in a
	// field name must not look like success.
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// strictJSON is the gateway's JSON marshaler with a decoder that refuses
// anything after the JSON value (by default the gateway decodes the first
// value of `{"name":"a"} {"name":"b"}` and ignores the rest) and whose errors
// name the field and the problem but never repeat what the client sent,
// which may be a secret.
type strictJSON struct {
	*runtime.JSONPb
}

// StreamContentType is the content type of a server stream (the token
// watch): one JSON object per line.
func (m strictJSON) StreamContentType(any) string { return "application/x-ndjson" }

// NewDecoder returns a decoder of one request body.
func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error { return m.decode(r, v) })
}

// decode reads one body and decodes it into v. It returns io.EOF for an
// empty body (which the gateway accepts as an empty message), a
// *http.MaxBytesError for one over the limit, and a *bodyError otherwise.
func (m strictJSON) decode(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return tooLarge
		}
		return &bodyError{problem: "the request body could not be read"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return io.EOF
	}
	msg, ok := asMessage(v)
	if !ok {
		return &bodyError{problem: "the request body cannot be decoded here"}
	}
	// Unlike JSONPb.Unmarshal, protojson itself rejects trailing data.
	if err := m.UnmarshalOptions.Unmarshal(body, msg); err != nil {
		return diagnose(m.UnmarshalOptions, body, msg.ProtoReflect().Descriptor())
	}
	return nil
}

var messageType = reflect.TypeFor[proto.Message]()

// asMessage returns the message a gateway decode target stands for: the
// target itself, or, for a body bound to a message field (`body: token`), the
// message a **T points to, allocated if need be.
func asMessage(v any) (proto.Message, bool) {
	if msg, ok := v.(proto.Message); ok {
		return msg, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Pointer || !rv.Elem().Type().Implements(messageType) {
		return nil, false
	}
	if rv.Elem().IsNil() {
		rv.Elem().Set(reflect.New(rv.Elem().Type().Elem()))
	}
	return rv.Elem().Interface().(proto.Message), true
}

// bodyError is a request body that does not decode: which field (a proto
// field path relative to the decoded message; "" for the body as a whole)
// and what is wrong with it, in words of ours only.
//
// The gateway passes on only the text of a decoding error, so the text is
// made to be read back (parseBodyError): a field path holds no space, and a
// problem always holds one before any ": ".
type bodyError struct {
	field   string
	problem string
}

const bodyErrorPrefix = "invalid request body: "

func (e *bodyError) Error() string {
	if e.field == "" {
		return bodyErrorPrefix + e.problem
	}
	return bodyErrorPrefix + e.field + ": " + e.problem
}

var bodyErrorText = regexp.MustCompile(`^` + bodyErrorPrefix + `(?:([A-Za-z0-9_.\[\]]+): )?(.+)$`)

// parseBodyError reads back the text of a bodyError.
func parseBodyError(msg string) (*bodyError, bool) {
	m := bodyErrorText.FindStringSubmatch(msg)
	if m == nil {
		return nil, false
	}
	return &bodyError{field: m[1], problem: m[2]}, true
}

// status returns the InvalidArgument answer to e, with a google.rpc.BadRequest
// naming the field (prefixed by prefix, the request field the body is bound
// to, if any) when there is one.
func (e *bodyError) status(prefix string) *status.Status {
	field := e.field
	if prefix != "" {
		field = joinPath(prefix, field)
	}
	st := status.New(codes.InvalidArgument, (&bodyError{field: field, problem: e.problem}).Error())
	if field == "" {
		return st
	}
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: e.problem},
	}}); err == nil {
		st = d
	}
	return st
}

// diagnose finds out why body does not decode into a message of type md,
// without quoting any of it: protojson's own errors repeat the offending
// text. It checks the syntax first, then decodes each member of the object
// on its own to find the first that fails.
func diagnose(opts protojson.UnmarshalOptions, body []byte, md protoreflect.MessageDescriptor) *bodyError {
	e := &bodyError{}
	var se *json.SyntaxError
	if err := json.Unmarshal(body, new(json.RawMessage)); errors.As(err, &se) {
		e.problem = fmt.Sprintf("malformed JSON at byte %d (want exactly one JSON object)", se.Offset)
		return e
	} else if err != nil {
		e.problem = "malformed JSON (want exactly one JSON object)"
		return e
	}
	e.field, e.problem = diagnoseObject(opts, body, md)
	if e.problem == "" {
		// Every member decodes on its own: a oneof set twice, say.
		e.problem = "the fields of the body do not fit together"
	}
	return e
}

// diagnoseObject returns the field path and the problem of the first member
// of the JSON object in body that does not decode into md; no problem when
// every member does on its own.
func diagnoseObject(opts protojson.UnmarshalOptions, body []byte, md protoreflect.MessageDescriptor) (field, problem string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", "invalid value: want a JSON object"
	}
	seen := make(map[protoreflect.FieldNumber]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", "malformed JSON object"
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", "malformed JSON object"
		}
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByTextName(key)
		}
		if fd == nil {
			if fieldNameLike.MatchString(key) {
				return key, "unknown field"
			}
			return "", "unknown field (its name is not repeated: longer than 40 characters or not an identifier)"
		}
		name := string(fd.Name())
		if seen[fd.Number()] {
			return name, "appears more than once"
		}
		seen[fd.Number()] = true
		one, _ := json.Marshal(map[string]json.RawMessage{key: raw})
		if err := opts.Unmarshal(one, dynamicpb.NewMessage(md)); err == nil {
			continue
		}
		if sub, problem := diagnoseMessages(opts, raw, fd); problem != "" {
			return joinPath(name, sub), problem
		}
		return name, valueProblem(fd)
	}
	return "", ""
}

// diagnoseMessages looks inside the value of a field holding messages of
// ours (one, or a list) for the member that fails.
func diagnoseMessages(opts protojson.UnmarshalOptions, raw json.RawMessage, fd protoreflect.FieldDescriptor) (field, problem string) {
	if fd.Message() == nil || fd.IsMap() || isWellKnown(fd.Message()) {
		return "", ""
	}
	if !fd.IsList() {
		if !isObject(raw) {
			return "", ""
		}
		return diagnoseObject(opts, raw, fd.Message())
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return "", ""
	}
	for i, item := range items {
		at := fmt.Sprintf("[%d]", i)
		if !isObject(item) {
			return at, "invalid value: want a JSON object"
		}
		if sub, problem := diagnoseObject(opts, item, fd.Message()); problem != "" {
			return joinPath(at, sub), problem
		}
	}
	return "", ""
}

func isObject(raw json.RawMessage) bool {
	return bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{"))
}

// joinPath joins a field name and a path inside it: "actions" and "[0].id",
// "token" and "type".
func joinPath(name, sub string) string {
	switch {
	case sub == "":
		return name
	case strings.HasPrefix(sub, "["):
		return name + sub
	}
	return name + "." + sub
}

// fieldNameLike is what an unknown field name may look like for the error to
// repeat it. Secrets are longer than 40 characters, so none is repeated.
var fieldNameLike = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,39}$`)

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "google.protobuf.")
}

// valueProblem says what a field's JSON value must look like.
func valueProblem(fd protoreflect.FieldDescriptor) string {
	var want string
	switch fd.Kind() {
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		names := make([]string, 0, values.Len())
		for i := range values.Len() {
			names = append(names, string(values.Get(i).Name()))
		}
		want = "one of " + strings.Join(names, ", ")
	case protoreflect.StringKind:
		want = "a string of valid UTF-8"
	case protoreflect.BoolKind:
		want = "true or false"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			want = `an RFC 3339 time such as "2026-01-02T15:04:05Z"`
		case "google.protobuf.Duration":
			want = `a duration in seconds such as "3600s"`
		case "google.protobuf.FieldMask":
			want = "a comma-separated list of field names"
		default:
			want = "a JSON object"
		}
	default:
		want = "a number"
	}
	if fd.IsList() {
		return "invalid value: want a JSON array of " + want
	}
	return "invalid value: want " + want
}
