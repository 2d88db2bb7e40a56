package service

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// Defaults for the watch settings of Config.
const (
	DefaultWatchHeartbeat = 15 * time.Second
	// DefaultWatchBuffer is how many events are kept for watchers that
	// lag behind or reconnect: 4096 events of about 80 bytes.
	DefaultWatchBuffer = 4096
)

// DefaultExpiryWarnings are the times before a token's expiry at which
// watchers get a TOKEN_EVENT_TYPE_EXPIRING event.
var DefaultExpiryWarnings = []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}

// maxResumeTokenLen bounds WatchTokensRequest.resume_token; the tokens this
// server issues are 22 characters.
const maxResumeTokenLen = 64

// watchBatch is how many events a watcher copies out of the log per lock.
const watchBatch = 64

// watchEvent is one entry of the event log. It holds only ids and times:
// never a secret or a hash.
type watchEvent struct {
	seq    uint64
	typ    tokendv1.TokenEventType
	id     string
	at     int64  // unix nanoseconds
	expire int64  // the token's expiry, unix nanoseconds; 0 = never or not applicable
	state  uint64 // the watchHub's state after the event
}

// watchHub turns the store's change feed and the clock into token events
// and keeps the latest of them in a fixed-size log that every watcher reads
// with its own cursor. A watcher costs the server a cursor, whatever its
// speed: one that falls more than the log's length behind (a slow reader)
// continues from the newest event, as does one resuming from a point the
// log no longer holds (or another process's); either gets a RESET first
// unless the tokens' state is the one it had.
type watchHub struct {
	epoch     uint64 // random per process: a resume token of another process names no seq here
	warnings  []time.Duration
	heartbeat time.Duration
	now       func() time.Time
	current   func(id string) *entry // the index's current version of a token

	mu   sync.Mutex
	log  []watchEvent // log[seq % len(log)]
	next uint64       // the seq of the next event; the log holds [next-len(log), next) ∩ [1, next)
	wake chan struct{}
	live bool // false while the feed replays stored tokens: no events then
	// state is a digest of every API token as indexed (an XOR of one
	// digest per token), so that a resume point this log no longer holds
	// (an old one, one from before a restart, from another replica) can
	// still be served when nothing a verifier caches has changed since.
	state uint64

	deadlines deadlineHeap
	byID      map[string]*deadline
	kick      chan struct{} // an earlier deadline was scheduled

	endOnce sync.Once
	ended   chan struct{} // closed by EndWatches
}

func newWatchHub(now func() time.Time, warnings []time.Duration, heartbeat time.Duration, buffer int, current func(string) *entry) *watchHub {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	if heartbeat <= 0 {
		heartbeat = DefaultWatchHeartbeat
	}
	w := slices.Clone(warnings)
	slices.Sort(w)
	slices.Reverse(w) // longest first
	return &watchHub{
		epoch: binary.BigEndian.Uint64(b[:]), warnings: slices.Compact(w), heartbeat: heartbeat,
		now: now, current: current,
		log: make([]watchEvent, buffer), next: 1, wake: make(chan struct{}),
		byID: make(map[string]*deadline), kick: make(chan struct{}, 1), ended: make(chan struct{}),
	}
}

// goLive starts turning changes into events: the replay of stored tokens is
// over.
func (h *watchHub) goLive() {
	h.mu.Lock()
	h.live = true
	heap.Init(&h.deadlines)
	h.mu.Unlock()
}

// observe records a committed change of one token, from its version before
// (nil: created) to its version after (nil: deleted), and schedules the
// after version's expiry events. It is called by the change feed, never
// concurrently with itself.
func (h *watchHub) observe(id string, before, after *entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.schedule(id, after)
	if before != nil && before.kind == storage.KindAPI {
		h.state ^= before.digest()
	}
	if after != nil && after.kind == storage.KindAPI {
		h.state ^= after.digest()
	}
	if !h.live {
		return
	}
	switch {
	case after == nil && before != nil && before.kind == storage.KindAPI:
		h.publish(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_DELETED, id, 0)
	case before == nil || after == nil || after.kind != storage.KindAPI:
		// A new token has no answer cached anywhere yet; admin tokens are
		// never introspected.
	case before.hash != after.hash || !sameHash(before.prevHash, after.prevHash):
		h.publish(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_SECRET_CHANGED, id, after.expire)
	case grantChanged(before, after):
		h.publish(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_CHANGED, id, after.expire)
	}
}

func sameHash(a, b *secretHash) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// grantChanged reports whether a verifier's cached answer about the token
// may be wrong after the change: what the answer shows or decides.
func grantChanged(a, b *entry) bool {
	return a.typ != b.typ || a.expire != b.expire || a.meta.name != b.meta.name ||
		a.meta.lifespan != b.meta.lifespan || !slices.Equal(a.meta.permissions, b.meta.permissions)
}

// publish appends an event to the log and wakes the watchers. h.mu is held.
func (h *watchHub) publish(typ tokendv1.TokenEventType, id string, expire int64) {
	seq := h.next
	h.log[seq%uint64(len(h.log))] = watchEvent{seq: seq, typ: typ, id: id, at: h.now().UnixNano(), expire: expire, state: h.state}
	h.next++
	close(h.wake)
	h.wake = make(chan struct{})
}

// read copies the events from seq from on into buf. lost is true when the
// log no longer holds from: the caller missed events. h.mu is held.
func (h *watchHub) read(from uint64, buf []watchEvent) (_ []watchEvent, lost bool) {
	oldest := uint64(1)
	if h.next > uint64(len(h.log)) {
		oldest = h.next - uint64(len(h.log))
	}
	if from < oldest || from > h.next {
		return buf, true
	}
	for s := from; s < h.next && len(buf) < cap(buf); s++ {
		buf = append(buf, h.log[s%uint64(len(h.log))])
	}
	return buf, false
}

// A resume token is the process's epoch, the seq of the last event the
// watcher saw and the hub's state after it, base64url-encoded.
func (h *watchHub) resumeToken(seen, state uint64) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], h.epoch)
	binary.BigEndian.PutUint64(b[8:16], seen)
	binary.BigEndian.PutUint64(b[16:], state)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// parseResumeToken reads a resume token: the seq after which to resume,
// whether it is a seq of this process's log, and the state the watcher had
// then.
func (h *watchHub) parseResumeToken(tok string) (seen, state uint64, sameEpoch bool, err error) {
	// The length is checked first, so an oversized token is not decoded.
	var b []byte
	var decodeErr error
	if len(tok) <= maxResumeTokenLen {
		b, decodeErr = base64.RawURLEncoding.DecodeString(tok)
	}
	if len(tok) > maxResumeTokenLen || decodeErr != nil || len(b) != 24 {
		return 0, 0, false, invalidField("resume_token", "not a resume token issued by tokend: pass one from an event unchanged")
	}
	return binary.BigEndian.Uint64(b[8:16]), binary.BigEndian.Uint64(b[16:]), binary.BigEndian.Uint64(b[:8]) == h.epoch, nil
}

// digest sums up what a verifier's answer about this token version depends
// on, the same in every process that loads the same record.
func (e *entry) digest() uint64 {
	const prime = 1099511628211
	x := uint64(14695981039346656037) // FNV-1a 64
	addByte := func(c byte) { x = (x ^ uint64(c)) * prime }
	addString := func(s string) {
		for i := 0; i < len(s); i++ {
			addByte(s[i])
		}
		addByte(0)
	}
	addUint := func(u uint64) {
		for i := 0; i < 8; i++ {
			addByte(byte(u >> (8 * i)))
		}
	}
	addString(e.meta.id)
	for _, c := range e.hash {
		addByte(c)
	}
	if e.prevHash != nil {
		for _, c := range e.prevHash {
			addByte(c)
		}
		addUint(uint64(e.meta.prevExpire))
	}
	addUint(uint64(e.typ))
	addUint(uint64(e.expire))
	addUint(uint64(e.meta.lifespan))
	addString(e.meta.name)
	for _, p := range e.meta.permissions {
		addString(p)
	}
	return x
}

// WatchTokens implements tokendv1.TokenServiceServer. The stream starts
// with a heartbeat (or a reset, when the resume point cannot be served),
// then carries every event from the resume point on. The caller's
// credential is checked again at each heartbeat: a watch whose credential
// was revoked ends with Unauthenticated or PermissionDenied. Returns
// InvalidArgument for a resume token this server did not issue.
func (s *Service) WatchTokens(req *tokendv1.WatchTokensRequest, stream grpc.ServerStreamingServer[tokendv1.WatchTokensResponse]) error {
	ctx := stream.Context()
	if _, err := s.authorize(ctx, ActionTokenIntrospect); err != nil {
		return err
	}
	h := s.watch
	select {
	case <-h.ended:
		return status.Error(codes.Unavailable, "shutting down")
	default:
	}
	// cursor is the seq of the next event to send; state is the hub's
	// state after the event before it (what the watcher knows).
	var cursor, state uint64
	reset := false
	h.mu.Lock()
	cursor, state = h.next, h.state
	h.mu.Unlock()
	if tok := req.GetResumeToken(); tok != "" {
		seen, st, sameEpoch, err := h.parseResumeToken(tok)
		if err != nil {
			return err // already InvalidArgument
		}
		cursor, state = seen+1, st
		if !sameEpoch {
			cursor = 0 // a seq no log holds: the state decides below
		}
	}
	send := func(ev watchEvent) error {
		msg := &tokendv1.WatchTokensResponse{
			Type: ev.typ, TokenId: ev.id, ResumeToken: h.resumeToken(cursor-1, state),
			EventTime: timestamppb.New(time.Unix(0, ev.at)),
		}
		if ev.expire != 0 {
			msg.ExpireTime = timestamppb.New(time.Unix(0, ev.expire))
		}
		return stream.Send(msg)
	}
	signal := func(typ tokendv1.TokenEventType) error {
		return send(watchEvent{typ: typ, at: s.now().UnixNano()})
	}

	ticker := time.NewTicker(h.heartbeat)
	defer ticker.Stop()
	buf := make([]watchEvent, 0, watchBatch)
	first := true
	for {
		h.mu.Lock()
		events, lost := h.read(cursor, buf[:0])
		if lost {
			// Events were missed; if they changed nothing a verifier
			// caches (nothing, or only changes undone since), going on
			// from now is as good as having seen them.
			reset = state != h.state
			cursor, state = h.next, h.state
		}
		wake := h.wake
		h.mu.Unlock()
		switch {
		case reset:
			if err := signal(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_RESET); err != nil {
				return err
			}
			reset, first = false, false
			continue
		case first:
			if err := signal(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT); err != nil {
				return err
			}
			first = false
		}
		for _, ev := range events {
			cursor, state = ev.seq+1, ev.state
			if err := send(ev); err != nil {
				return err
			}
		}
		if len(events) > 0 {
			// Heartbeats keep their pace on a busy stream too: they are
			// where the credential is checked again.
			select {
			case <-ticker.C:
			default:
				continue
			}
			if err := s.heartbeat(ctx, signal); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return s.toStatus(ctx, "WatchTokens", ctx.Err())
		case <-h.ended:
			return status.Error(codes.Unavailable, "shutting down: resume the watch on another server or after the restart")
		case <-wake:
		case <-ticker.C:
			if err := s.heartbeat(ctx, signal); err != nil {
				return err
			}
		}
	}
}

// heartbeat checks the watcher's credential again, then sends a heartbeat.
func (s *Service) heartbeat(ctx context.Context, signal func(tokendv1.TokenEventType) error) error {
	if _, err := s.authorize(ctx, ActionTokenIntrospect); err != nil {
		return err
	}
	return signal(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_HEARTBEAT)
}

// EndWatches ends every watch, now and to come, with Unavailable: a
// server stopping gracefully calls it first, since a watch never ends on its
// own and would hold the shutdown until its deadline.
func (s *Service) EndWatches() {
	s.watch.endOnce.Do(func() { close(s.watch.ended) })
}

// deadline is the next time-driven event of one token version.
type deadline struct {
	at     int64 // unix nanoseconds
	id     string
	entry  *entry // the version it was computed for
	typ    tokendv1.TokenEventType
	expire int64
	index  int // in deadlineHeap
}

type deadlineHeap []*deadline

func (d deadlineHeap) Len() int           { return len(d) }
func (d deadlineHeap) Less(i, j int) bool { return d[i].at < d[j].at }
func (d deadlineHeap) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].index, d[j].index = i, j
}
func (d *deadlineHeap) Push(x any) {
	x.(*deadline).index = len(*d)
	*d = append(*d, x.(*deadline))
}
func (d *deadlineHeap) Pop() any {
	old := *d
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*d = old[:len(old)-1]
	return x
}

// nextDeadline returns the first time-driven event of an API token version
// strictly after t: an expiry warning, the expiry, or the end of a grace
// period (its previous secret dies).
func (h *watchHub) nextDeadline(e *entry, t int64) (at int64, typ tokendv1.TokenEventType) {
	consider := func(when int64, what tokendv1.TokenEventType) {
		if when > t && (at == 0 || when < at) {
			at, typ = when, what
		}
	}
	if e.expire != 0 {
		for _, w := range h.warnings {
			consider(e.expire-int64(w), tokendv1.TokenEventType_TOKEN_EVENT_TYPE_EXPIRING)
		}
		consider(e.expire, tokendv1.TokenEventType_TOKEN_EVENT_TYPE_EXPIRED)
	}
	if e.prevHash != nil {
		consider(e.meta.prevExpire, tokendv1.TokenEventType_TOKEN_EVENT_TYPE_SECRET_CHANGED)
	}
	return at, typ
}

// schedule replaces the pending deadline of token id with that of its
// version e (nil: deleted). Each token has at most one pending deadline, so
// the heap never holds more entries than there are tokens. h.mu is held.
func (h *watchHub) schedule(id string, e *entry) {
	h.scheduleAfter(id, e, h.now().UnixNano())
}

func (h *watchHub) scheduleAfter(id string, e *entry, t int64) {
	var at int64
	var typ tokendv1.TokenEventType
	if e != nil && e.kind == storage.KindAPI {
		at, typ = h.nextDeadline(e, t)
	}
	d := h.byID[id]
	switch {
	case at == 0 && d != nil:
		heap.Remove(&h.deadlines, d.index)
		delete(h.byID, id)
		return
	case at == 0:
		return
	case d == nil:
		d = &deadline{id: id, at: at, entry: e, typ: typ, expire: e.expire}
		h.byID[id] = d
		if !h.live {
			// While the stored tokens are replayed the heap is built once,
			// at the end (goLive): a push per token would cost n log n.
			d.index = len(h.deadlines)
			h.deadlines = append(h.deadlines, d)
			return
		}
		heap.Push(&h.deadlines, d)
	default:
		d.at, d.entry, d.typ, d.expire = at, e, typ, e.expire
		if !h.live {
			return
		}
		heap.Fix(&h.deadlines, d.index)
	}
	if d.index == 0 {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// runDeadlines publishes time-driven events as they fall due, until ctx is
// done.
func (h *watchHub) runDeadlines(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		now := h.now().UnixNano()
		for len(h.deadlines) > 0 && h.deadlines[0].at <= now {
			d := h.deadlines[0]
			if h.current(d.id) == d.entry {
				h.publish(d.typ, d.id, d.expire)
			}
			h.scheduleAfter(d.id, d.entry, d.at)
		}
		wait := time.Hour
		if len(h.deadlines) > 0 {
			wait = time.Duration(h.deadlines[0].at - now)
		}
		h.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-h.kick:
		}
	}
}
