package server

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/service"
)

// introspectViews turns introspection results into answers for both
// transports, caching what it derives from each token snapshot: the proto
// view and the encoded answer gRPC sends, and the JSON REST sends.
// Introspection is the hot path, and building any of them from scratch
// costs more than the introspection itself.
// A snapshot is immutable, so what is derived from it stays true except for
// what changes without a new version: the last use and whether a rotated-out
// secret is still in its grace period.
//
// The cache does not keep snapshots alive: it is keyed on a snapshot's
// address and holds only a weak pointer to it, checked on every hit (an
// address the collector has reused for another snapshot is a miss), and a
// cleanup removes the entry once the service has replaced the snapshot and
// it is collected. A weak pointer made per call, to key a map on, costs a
// fifth of an introspection.
type introspectViews struct {
	shards [viewShards]viewShard
	// inactive holds the whole REST answer for each inactive reason, and
	// inactiveGRPC the encoded gRPC one.
	inactive     map[tokendv1.InactiveReason][]byte
	inactiveGRPC map[tokendv1.InactiveReason]*encodedAnswer
}

// viewShards spreads the cache over several locks, as the index does.
const viewShards = 64

type viewShard struct {
	mu sync.RWMutex
	m  map[uintptr]*snapshotViews
}

// snapshotViews are the answers derived from one snapshot, each built when
// first asked for.
type snapshotViews struct {
	snapshot weak.Pointer[service.TokenSnapshot]
	proto    atomic.Pointer[protoView]
	// json is indexed by [in grace][previous secret][some action denied].
	json [2][2][2]atomic.Pointer[jsonTemplate]
}

// protoView is a snapshot's proto view as last answered; it is rebuilt only
// when what it shows changes (the last use, at most once a second, or the end
// of a grace period). Responses share it and only read it.
type protoView struct {
	grace    bool
	base     *tokendv1.Token // without last_used_time, built once per grace state
	lastUsed int64           // unix nanoseconds of view's last use, 0 = never
	view     *tokendv1.Token
	// encoded is the whole gRPC answer with view when no action is denied,
	// indexed by [previous secret], each encoded when first asked for.
	encoded [2]atomic.Pointer[encodedAnswer]
}

// jsonTemplate is a whole REST introspection answer, marshalled once by
// restJSON with marks where the per-call parts go, and cut at the marks: the
// last-use time, then (when some action is denied) the denied actions.
type jsonTemplate struct {
	beforeLastUse, afterLastUse, afterDenied []byte
	// separator is what restJSON writes between two items of a list.
	separator []byte
}

// lastUseMark stands in for the last-use time while a template is
// marshalled: a time no token can have (lifespans end within a century).
var lastUseMark = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// deniedMark stands in for a denied action: not an action id (those hold no
// spaces), so it cannot appear anywhere else in the answer.
const deniedMark = "denied action goes here"

func newIntrospectViews() (*introspectViews, error) {
	v := &introspectViews{
		inactive:     make(map[tokendv1.InactiveReason][]byte),
		inactiveGRPC: make(map[tokendv1.InactiveReason]*encodedAnswer),
	}
	for i := range v.shards {
		v.shards[i].m = make(map[uintptr]*snapshotViews)
	}
	for n := range tokendv1.InactiveReason_name {
		reason := tokendv1.InactiveReason(n)
		if reason == tokendv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED {
			continue
		}
		answer := &tokendv1.IntrospectTokenResponse{InactiveReason: reason}
		body, err := restJSON.Marshal(answer)
		if err != nil {
			return nil, fmt.Errorf("introspection answer for %s: %w", reason, err)
		}
		v.inactive[reason] = body
		encoded, err := proto.Marshal(answer)
		if err != nil {
			return nil, fmt.Errorf("introspection answer for %s: %w", reason, err)
		}
		v.inactiveGRPC[reason] = &encodedAnswer{bytes: encoded}
	}
	return v, nil
}

// of returns the views of t, making an empty set on first use.
func (v *introspectViews) of(t *service.TokenSnapshot) *snapshotViews {
	k := uintptr(unsafe.Pointer(t))
	sh := &v.shards[(k>>4)%viewShards]
	sh.mu.RLock()
	sv := sh.m[k]
	sh.mu.RUnlock()
	if sv != nil && sv.snapshot.Value() == t {
		return sv
	}
	sv = &snapshotViews{snapshot: weak.Make(t)}
	sh.mu.Lock()
	sh.m[k] = sv
	sh.mu.Unlock()
	runtime.AddCleanup(t, func(k uintptr) {
		sh.mu.Lock()
		if sh.m[k] == sv {
			delete(sh.m, k)
		}
		sh.mu.Unlock()
	}, k)
	return sv
}

// response is in as a response message, sharing the cached token view.
func (v *introspectViews) response(in *service.Introspection) *tokendv1.IntrospectTokenResponse {
	if in.Token == nil {
		return &tokendv1.IntrospectTokenResponse{InactiveReason: in.InactiveReason}
	}
	return &tokendv1.IntrospectTokenResponse{
		Active:         true,
		Token:          v.tokenView(in),
		Allowed:        in.Allowed(),
		DeniedActions:  in.DeniedActions,
		PreviousSecret: in.PreviousSecret,
	}
}

// answer is in as the gRPC server sends it: the encoded answer the views
// keep when there is one (the answer is inactive, or active with no action
// denied), otherwise a new message.
func (v *introspectViews) answer(in *service.Introspection) any {
	if in.Token == nil {
		if a, ok := v.inactiveGRPC[in.InactiveReason]; ok {
			return a
		}
		return v.response(in)
	}
	if len(in.DeniedActions) > 0 {
		return v.response(in)
	}
	pv := v.protoView(in)
	slot := &pv.encoded[index(in.PreviousSecret)]
	if a := slot.Load(); a != nil {
		return a
	}
	resp := &tokendv1.IntrospectTokenResponse{Active: true, Token: pv.view, Allowed: true, PreviousSecret: in.PreviousSecret}
	encoded, err := proto.Marshal(resp)
	if err != nil {
		return resp // the codec will say what is wrong with it
	}
	a := &encodedAnswer{bytes: encoded}
	slot.Store(a)
	return a
}

func (v *introspectViews) tokenView(in *service.Introspection) *tokendv1.Token {
	return v.protoView(in).view
}

// protoView returns the view of in's snapshot as of in's last use, building
// it if the cached one shows another.
func (v *introspectViews) protoView(in *service.Introspection) *protoView {
	sv := v.of(in.Token)
	last := nanos(in.LastUsed)
	grace := in.Token.InGrace(in.Now)
	c := sv.proto.Load()
	if c != nil && c.grace == grace && c.lastUsed == last {
		return c
	}
	var base *tokendv1.Token
	if c != nil && c.grace == grace {
		base = c.base
	} else {
		base = in.Token.View(time.Time{}, in.Now)
	}
	// Only the last use changed (for a token used less than once a
	// second, on every call): copy the base rather than rebuild it.
	view := &tokendv1.Token{
		Id:                       base.Id,
		Name:                     base.Name,
		Description:              base.Description,
		Kind:                     base.Kind,
		Type:                     base.Type,
		Permissions:              base.Permissions,
		Lifespan:                 base.Lifespan,
		ExpireTime:               base.ExpireTime,
		CreateTime:               base.CreateTime,
		UpdateTime:               base.UpdateTime,
		SecretHint:               base.SecretHint,
		PreviousSecretExpireTime: base.PreviousSecretExpireTime,
	}
	if last != 0 {
		view.LastUsedTime = timestamppb.New(in.LastUsed)
	}
	pv := &protoView{grace: grace, base: base, lastUsed: last, view: view}
	sv.proto.Store(pv)
	return pv
}

// appendJSON appends in as the REST answer to b. It fails only if restJSON
// cannot marshal a response, which it always can.
func (v *introspectViews) appendJSON(b []byte, in *service.Introspection) ([]byte, error) {
	if in.Token == nil {
		body, ok := v.inactive[in.InactiveReason]
		if !ok {
			return nil, fmt.Errorf("no answer for inactive reason %d", in.InactiveReason)
		}
		return append(b, body...), nil
	}
	grace, denied := in.Token.InGrace(in.Now), len(in.DeniedActions) > 0
	slot := &v.of(in.Token).json[index(grace)][index(in.PreviousSecret)][index(denied)]
	t := slot.Load()
	if t == nil {
		var err error
		if t, err = buildTemplate(in, denied); err != nil {
			return nil, err
		}
		slot.Store(t)
	}
	b = append(b, t.beforeLastUse...)
	if in.LastUsed.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = appendTimestamp(b, in.LastUsed)
		b = append(b, '"')
	}
	b = append(b, t.afterLastUse...)
	if denied {
		for i, d := range in.DeniedActions {
			if i > 0 {
				b = append(b, t.separator...)
			}
			// Action ids hold only letters, digits and _:-. (the service
			// checks them), which JSON writes as they are.
			b = append(b, '"')
			b = append(b, d...)
			b = append(b, '"')
		}
		b = append(b, t.afterDenied...)
	}
	return b, nil
}

func index(b bool) int {
	if b {
		return 1
	}
	return 0
}

// buildTemplate marshals the answer to in with marks in place of its
// per-call parts and cuts it at the marks.
func buildTemplate(in *service.Introspection, denied bool) (*jsonTemplate, error) {
	resp := &tokendv1.IntrospectTokenResponse{
		Active:         true,
		Token:          in.Token.View(lastUseMark, in.Now),
		Allowed:        !denied,
		PreviousSecret: in.PreviousSecret,
	}
	if denied {
		resp.DeniedActions = []string{deniedMark, deniedMark}
	}
	body, err := restJSON.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("introspection answer template: %w", err)
	}
	lastUse, err := restJSON.Marshal(timestamppb.New(lastUseMark))
	if err != nil {
		return nil, fmt.Errorf("introspection answer template: %w", err)
	}
	before, rest, ok := bytes.Cut(body, bytes.TrimSpace(lastUse))
	if !ok {
		return nil, fmt.Errorf("introspection answer template: no last-use mark in %d bytes", len(body))
	}
	t := &jsonTemplate{beforeLastUse: before, afterLastUse: rest}
	if denied {
		mark := []byte(`"` + deniedMark + `"`)
		between, after, ok := bytes.Cut(rest, mark)
		separator, after2, ok2 := bytes.Cut(after, mark)
		if !ok || !ok2 {
			return nil, fmt.Errorf("introspection answer template: no denied-action marks in %d bytes", len(body))
		}
		t.afterLastUse, t.separator, t.afterDenied = between, separator, after2
	}
	return t, nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// appendTimestamp writes t as protojson writes a google.protobuf.Timestamp:
// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
func appendTimestamp(b []byte, t time.Time) []byte {
	start := len(b)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000")
	for _, cut := range []string{"000", "000", ".000"} {
		if n := len(b) - len(cut); n > start && string(b[n:]) == cut {
			b = b[:n]
		} else {
			break
		}
	}
	return append(b, 'Z')
}
