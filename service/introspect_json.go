package service

import (
	"context"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// IntrospectTokenJSON is IntrospectToken answering with the JSON the REST
// gateway would write for its response (protojson: lowerCamel names, enum
// names, unpopulated fields emitted). It is the REST hot path: the token's
// JSON is built once per token version, with its last-use time spliced in
// per call, rather than marshalled by reflection on every call. Errors are
// those of IntrospectToken.
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
	b := make([]byte, 0, 640+32*len(a.denied))
	b = append(b, `{"active":true,"inactiveReason":"INACTIVE_REASON_UNSPECIFIED","token":`...)
	b = a.entry.appendViewJSON(b, a.now)
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

// viewJSON is an entry's API view in JSON, split where its last-use time
// goes, so that a call only splices in the time instead of marshalling the
// view again each time the time changes (for a token used less than once a
// second, that is every call).
type viewJSON struct {
	grace         bool // whether the previous secret was still valid
	before, after []byte
}

// lastUseMark stands in for the last-use time while the view is marshalled:
// a time no token can have (lifespans end within a century).
var lastUseMark = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

const lastUseMarkJSON = `"9999-12-31T23:59:59.999999999Z"`

// appendViewJSON appends the entry's API view at now, in JSON, to b.
func (e *entry) appendViewJSON(b []byte, now time.Time) []byte {
	grace := e.inGrace(now)
	vs := e.viewsOnce()
	j := vs.json.Load()
	if j == nil || j.grace != grace {
		j = e.buildViewJSON(now, grace)
		vs.json.Store(j)
	}
	b = append(b, j.before...)
	if last := e.usage.lastUsed.Load(); last != 0 {
		b = append(b, '"')
		b = appendTimestamp(b, last)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	return append(b, j.after...)
}

func (e *entry) buildViewJSON(now time.Time, grace bool) *viewJSON {
	marked, err := jsonOptions.Marshal(tokenView(e.token(), lastUseMark, now))
	if err != nil {
		// A view always marshals; should it not, say nothing of the token.
		return &viewJSON{grace: grace, before: []byte("null")}
	}
	before, after, _ := strings.Cut(string(marked), lastUseMarkJSON)
	return &viewJSON{grace: grace, before: []byte(before), after: []byte(after)}
}

// appendTimestamp writes unix nanoseconds as protojson writes a
// google.protobuf.Timestamp: RFC 3339 in UTC with 0, 3, 6 or 9 fractional
// digits.
func appendTimestamp(b []byte, nanos int64) []byte {
	t := time.Unix(0, nanos).UTC()
	start := len(b)
	b = t.AppendFormat(b, "2006-01-02T15:04:05.000000000")
	for _, cut := range []string{"000", "000", ".000"} {
		if n := len(b) - len(cut); n > start && string(b[n:]) == cut {
			b = b[:n]
		} else {
			break
		}
	}
	return append(b, 'Z')
}
