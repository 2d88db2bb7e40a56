package service

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// IntrospectTokenJSON is IntrospectToken answering with the JSON the REST
// gateway would write for its response (protojson: lowerCamel names, enum
// names, unpopulated fields emitted). It is the REST hot path: the token's
// JSON is built once per cached view rather than marshalled, by reflection,
// on every call. Errors are those of IntrospectToken.
func (s *Service) IntrospectTokenJSON(ctx context.Context, req *tokendv1.IntrospectTokenRequest) ([]byte, error) {
	a, err := s.introspectCall(ctx, req)
	if err != nil {
		return nil, err
	}
	if a.entry == nil {
		b := make([]byte, 0, 128)
		b = append(b, `{"active":false,"inactiveReason":`...)
		b = strconv.AppendQuote(b, a.reason.String())
		return append(b, `,"token":null,"allowed":false,"deniedActions":[],"previousSecret":false}`...), nil
	}
	token := a.entry.viewJSONAt(a.now)
	b := make([]byte, 0, len(token)+128+32*len(a.denied))
	b = append(b, `{"active":true,"inactiveReason":"INACTIVE_REASON_UNSPECIFIED","token":`...)
	b = append(b, token...)
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, len(a.denied) == 0)
	b = append(b, `,"deniedActions":[`...)
	for i, d := range a.denied {
		if i > 0 {
			b = append(b, ',')
		}
		// Action ids are checked to hold only letters, digits and _:-.
		// before they get here: nothing to escape.
		b = append(b, '"')
		b = append(b, d...)
		b = append(b, '"')
	}
	b = append(b, `],"previousSecret":`...)
	b = strconv.AppendBool(b, a.previous)
	return append(b, '}'), nil
}

// jsonOptions match the REST gateway's marshaler.
var jsonOptions = protojson.MarshalOptions{EmitUnpopulated: true}

// viewJSONAt is viewAt in JSON, cached along with the view.
func (e *entry) viewJSONAt(now time.Time) []byte {
	v := e.viewAt(now)
	c := e.cached.Load()
	current := c != nil && c.view == v
	if current {
		if j := c.json.Load(); j != nil {
			return *j
		}
	}
	j, err := jsonOptions.Marshal(v)
	if err != nil {
		// A view always marshals; should it not, say nothing about the token.
		return []byte("null")
	}
	if current {
		c.json.Store(&j)
	}
	return j
}
