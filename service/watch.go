package service

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
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
//
// The hub is dormant until the first watch: until then no one can hold a
// resume token of this process or read its log, so an event would reach
// nobody, and the index alone follows the feed. Keeping the state and the
// deadlines up to date through the start-up replay, token by token, nearly
// doubled the time of the replay's in-memory part. The first watch
// activates the hub, which then reads both off the finished index in one
// pass (each entry carries its digest, summed while it was built).
type watchHub struct {
	epoch     uint64 // random per process: a resume token of another process names no seq here
	warnings  []time.Duration
	heartbeat time.Duration
	now       func() time.Time
	current   func(id string) *entry // the index's current version of a token

	// feed is held while a change is applied to the index and observed,
	// and while the hub is activated, so that activation reads an index
	// that no change is half-way through: a change is then either in
	// what activation reads or observed after it, never both or neither.
	feed   sync.Mutex
	active atomic.Bool // set once, under feed and mu

	mu   sync.Mutex
	log  []watchEvent // log[seq % len(log)]
	next uint64       // the seq of the next event; the log holds [next-len(log), next) ∩ [1, next)
	wake chan struct{}
	// state is a digest of every API token as indexed (an XOR of one
	// digest per token), so that a resume point this log no longer holds
	// (an old one, one from before a restart, from another replica) can
	// still be served when nothing a verifier caches has changed since.
	state uint64

	// deadlines holds the next time-driven event of each token version
	// that has one. A change does not look for the previous version's
	// entry (that would take a map by id, as large as the index): the
	// entry stays until it falls due, when it is dropped as no longer
	// current, or until stale outgrows the live entries and they are
	// sorted out in one pass.
	deadlines deadlineHeap
	stale     int           // about how many entries of deadlines are for versions replaced since
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
		kick: make(chan struct{}, 1), ended: make(chan struct{}),
	}
}

// applyChange brings the index up to date with a committed change, then
// tells watchers about it. It is the store's change feed subscriber.
func (s *Service) applyChange(c storage.Change) {
	h := s.watch
	h.feed.Lock()
	defer h.feed.Unlock()
	switch {
	case !h.active.Load():
		// No one has watched yet: activation reads the change from the
		// index.
		s.index.apply(c)
	case c.Reset:
		s.applyReset(c)
	default:
		before, after := s.index.apply(c)
		h.observe(c.ID, before, after)
	}
}

// applyReset replaces the whole index (the store lost track of single
// changes, as an etcd watch that was compacted past does) and tells watchers
// what changed for each token, as if the changes had come one by one: a
// verifier's cache stays correct without being dropped. h.feed is held.
func (s *Service) applyReset(c storage.Change) {
	before := s.index.entries()
	s.index.apply(c)
	for _, t := range c.Tokens {
		if _, ok := before[t.ID]; !ok {
			before[t.ID] = nil
		}
	}
	for id, old := range before {
		s.watch.observe(id, old, s.index.byTokenID(id))
	}
}

// activateWatch wakes the hub at the first watch: it sums up the state of
// the indexed tokens and schedules their deadlines, in one pass over the
// index, while the feed waits.
func (s *Service) activateWatch() {
	h := s.watch
	if h.active.Load() {
		return
	}
	h.feed.Lock()
	defer h.feed.Unlock()
	if h.active.Load() {
		return
	}
	now := h.now().UnixNano()
	var state uint64
	var deadlines deadlineHeap
	s.index.mu.RLock()
	for _, e := range s.index.byID {
		if e.meta.kind != storage.KindAPI {
			continue
		}
		state ^= e.digest
		if at, _ := h.nextDeadline(e, now); at != 0 {
			deadlines = append(deadlines, deadline{at: at, entry: e})
		}
	}
	s.index.mu.RUnlock()
	heap.Init(&deadlines)
	h.mu.Lock()
	h.state = state
	h.deadlines = slices.Clip(deadlines)
	h.active.Store(true)
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// observe records a committed change of one token, from its version before
// (nil: created) to its version after (nil: deleted), and schedules the
// after version's time-driven events. It is called by the change feed
// (h.feed held) once the hub is active.
func (h *watchHub) observe(id string, before, after *entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now().UnixNano()
	if before != nil && before.meta.kind == storage.KindAPI {
		h.state ^= before.digest
		if at, _ := h.nextDeadline(before, now); at != 0 {
			h.stale++ // its entry is most likely still in the heap
		}
	}
	if after != nil && after.meta.kind == storage.KindAPI {
		h.state ^= after.digest
		h.schedule(after, now)
	}
	if h.stale > minStaleSweep && h.stale > len(h.deadlines)/2 {
		h.sweepDeadlines()
	}
	switch {
	case after == nil && before != nil && before.meta.kind == storage.KindAPI:
		h.publish(tokendv1.TokenEventType_TOKEN_EVENT_TYPE_DELETED, id, 0)
	case before == nil || after == nil || after.meta.kind != storage.KindAPI:
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
	return a.meta.typ != b.meta.typ || a.expire != b.expire || a.meta.name != b.meta.name ||
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

// sumDigest sums up what a verifier's answer about this token version
// depends on, the same in every process that loads the same record: it
// depends on no per-process seed (a build with another formula only costs a
// watcher resuming across the two a RESET). It absorbs eight bytes at a
// time, and strings with their length, so that fields cannot run into each
// other. It runs for every token the replay loads, so each word costs one
// multiplication; the mixing is finished once at the end.
func (e *entry) sumDigest() uint64 {
	d := digester(0x6a09e667f3bcc908)
	d.addString(e.meta.id)
	d.addBytes(e.hash[:])
	if e.prevHash != nil {
		d.addBytes(e.prevHash[:])
		d.add(uint64(e.meta.prevExpire))
	}
	d.add(uint64(e.meta.typ))
	d.add(uint64(e.expire))
	d.add(uint64(e.meta.lifespan))
	d.addString(e.meta.name)
	d.add(uint64(len(e.meta.permissions)))
	for _, p := range e.meta.permissions {
		d.addString(p)
	}
	x := uint64(d) // splitmix64's finalizer
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

type digester uint64

func (d *digester) add(w uint64) {
	x := (uint64(*d) ^ w) * 0x9e3779b97f4a7c15
	*d = digester(x ^ x>>32)
}

func (d *digester) addBytes(b []byte) {
	for ; len(b) >= 8; b = b[8:] {
		d.add(binary.LittleEndian.Uint64(b))
	}
	var tail [8]byte
	copy(tail[:], b)
	d.add(binary.LittleEndian.Uint64(tail[:]) ^ uint64(len(b))<<56)
}

func (d *digester) addString(s string) {
	d.add(uint64(len(s)))
	for ; len(s) >= 8; s = s[8:] {
		d.add(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
	}
	var tail uint64
	for i := range len(s) {
		tail |= uint64(s[i]) << (8 * i)
	}
	d.add(tail)
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
	s.activateWatch()
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
	at    int64 // unix nanoseconds
	entry *entry
}

type deadlineHeap []deadline

func (d deadlineHeap) Len() int           { return len(d) }
func (d deadlineHeap) Less(i, j int) bool { return d[i].at < d[j].at }
func (d deadlineHeap) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlineHeap) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlineHeap) Pop() any {
	old := *d
	x := old[len(old)-1]
	old[len(old)-1] = deadline{}
	*d = old[:len(old)-1]
	return x
}

// minStaleSweep is how many stale deadlines may wait for their time
// whatever the heap's size: sorting them out is not worth a pass sooner.
const minStaleSweep = 1024

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

// schedule adds the first time-driven event of API token version e after
// t, if it has one. h.mu is held.
func (h *watchHub) schedule(e *entry, t int64) {
	at, _ := h.nextDeadline(e, t)
	if at == 0 {
		return
	}
	heap.Push(&h.deadlines, deadline{at: at, entry: e})
	if h.deadlines[0].entry == e {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// sweepDeadlines drops the deadlines of versions that are no longer
// current. h.mu is held.
func (h *watchHub) sweepDeadlines() {
	live := h.deadlines[:0]
	for _, d := range h.deadlines {
		if h.current(d.entry.meta.id) == d.entry {
			live = append(live, d)
		}
	}
	clear(h.deadlines[len(live):])
	h.deadlines = live
	heap.Init(&h.deadlines)
	h.stale = 0
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
			d := &h.deadlines[0]
			e := d.entry
			if h.current(e.meta.id) != e {
				// Replaced or deleted since it was scheduled.
				heap.Pop(&h.deadlines)
				h.stale = max(h.stale-1, 0)
				continue
			}
			// The event due at d.at is the first one after just before it.
			_, typ := h.nextDeadline(e, d.at-1)
			h.publish(typ, e.meta.id, e.expire)
			if at, _ := h.nextDeadline(e, d.at); at != 0 {
				d.at = at
				heap.Fix(&h.deadlines, 0)
			} else {
				heap.Pop(&h.deadlines)
			}
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
