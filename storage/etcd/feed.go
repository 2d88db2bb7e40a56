package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
)

// subscriber is one Subscribe call's feed.
type subscriber struct {
	apply func(storage.Change)

	mu sync.Mutex
	// applied is the revision up to which every change has been applied.
	applied int64
	// advanced is closed, and replaced, whenever applied advances or the
	// feed ends.
	advanced chan struct{}
	ended    bool
	// confirmed is when the feed was last known complete, unix
	// nanoseconds (see Store.FeedConfirmedAt).
	confirmed atomic.Int64
}

// advance records that every change up to rev has been applied.
func (sub *subscriber) advance(rev int64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if rev > sub.applied {
		sub.applied = rev
		close(sub.advanced)
		sub.advanced = make(chan struct{})
	}
}

func (sub *subscriber) end() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.ended = true
	close(sub.advanced)
	sub.advanced = make(chan struct{})
}

// wait returns once rev has been applied, the feed has ended or ctx is done.
func (sub *subscriber) wait(ctx context.Context, rev int64) {
	for {
		sub.mu.Lock()
		done, ch := sub.applied >= rev || sub.ended, sub.advanced
		sub.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// waitApplied waits, at most the request timeout, until every subscriber
// has applied the changes committed up to rev.
func (s *Store) waitApplied(ctx context.Context, rev int64) {
	s.mu.Lock()
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	for _, sub := range subs {
		sub.wait(ctx, rev)
	}
}

// FeedConfirmedAt returns the last time every subscriber's feed was known
// to hold every committed change: when the snapshot was read, then when
// the last progress request etcd answered was sent. It is the zero time
// when there is no subscriber. An atomic load.
func (s *Store) FeedConfirmedAt() time.Time {
	n := s.confirmed.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// updateConfirmed recomputes the store's confirmation time as the oldest
// of its subscribers'.
func (s *Store) updateConfirmed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest int64
	for sub := range s.subs {
		if c := sub.confirmed.Load(); oldest == 0 || c < oldest {
			oldest = c
		}
	}
	s.confirmed.Store(oldest)
}

// snapshotBatch is about how many tokens one read of a snapshot fetches at
// most, so that no response is larger than a few megabytes however many
// tokens there are.
const snapshotBatch int64 = 5000

// snapshot reads every stored token at one revision and returns them with
// that revision.
func (s *Store) snapshot(ctx context.Context) ([]*storage.Token, int64, error) {
	var (
		tokens []*storage.Token
		rev    int64
	)
	if err := s.snapshotUnder(ctx, s.key(dirTokens), snapshotBatch, &rev, &tokens); err != nil {
		return nil, 0, err
	}
	return tokens, rev, nil
}

// snapshotUnder appends to tokens, in key order, every token whose key
// starts with p, at the revision *rev (the current one if *rev is 0, which
// it then sets), reading about batch tokens at most at a time. A range read
// with a limit makes the server count every key to the range's end, so
// paging through all tokens that way would cost each page the rest of them;
// instead it splits the keys under p by their next byte into 256 ranges,
// counts each (one walk over the keys under p), and reads runs of adjacent
// ranges whole, each run up to batch tokens; a range holding more than that
// is split again the same way.
func (s *Store) snapshotUnder(ctx context.Context, p string, batch int64, rev *int64, tokens *[]*storage.Token) error {
	const op = "subscribe"
	type span struct{ lo, hi string }
	spans := make([]span, 256)
	for c := range spans {
		// The first range starts at p itself, which is a key too.
		lo, hi := p+string([]byte{byte(c)}), ""
		if c == 0 {
			lo = p
		}
		if c < 255 {
			hi = p + string([]byte{byte(c + 1)})
		} else {
			hi = clientv3.GetPrefixRangeEnd(p)
		}
		spans[c] = span{lo, hi}
	}
	counts := make([]int64, 0, len(spans))
	for chunk := range slices.Chunk(spans, maxTxnOps) {
		reads := make([]clientv3.Op, len(chunk))
		for i, sp := range chunk {
			opts := []clientv3.OpOption{clientv3.WithRange(sp.hi), clientv3.WithCountOnly()}
			if *rev != 0 {
				opts = append(opts, clientv3.WithRev(*rev))
			}
			reads[i] = clientv3.OpGet(sp.lo, opts...)
		}
		resp, err := s.txn(ctx, op, nil, reads, nil)
		if err != nil {
			return err
		}
		if *rev == 0 {
			*rev = resp.Header.Revision
		}
		for _, r := range resp.Responses {
			counts = append(counts, r.GetResponseRange().Count)
		}
	}
	read := func(lo, hi string) error {
		octx, cancel := s.opContext(ctx)
		resp, err := s.cli.Get(octx, lo, clientv3.WithRange(hi), clientv3.WithRev(*rev))
		cancel()
		if err != nil {
			return s.fail(octx, op, err)
		}
		for _, kv := range resp.Kvs {
			t, err := decodeToken(kv.Value)
			if err != nil {
				return fmt.Errorf("%s: %q: %w", op, kv.Key, err)
			}
			*tokens = append(*tokens, t)
		}
		return nil
	}
	var (
		runLo string
		runN  int64
	)
	flush := func(hi string) error {
		if runN == 0 {
			return nil
		}
		err := read(runLo, hi)
		runN = 0
		return err
	}
	for c, sp := range spans {
		n := counts[c]
		switch {
		case n == 0:
			continue
		case n > batch:
			if err := flush(sp.lo); err != nil {
				return err
			}
			if c == 0 {
				// The key p itself sorts before the keys under p+"\x00".
				if err := read(p, p+"\x00"); err != nil {
					return err
				}
			}
			if err := s.snapshotUnder(ctx, p+string([]byte{byte(c)}), batch, rev, tokens); err != nil {
				return err
			}
			continue
		case runN+n > batch:
			if err := flush(sp.lo); err != nil {
				return err
			}
		}
		if runN == 0 {
			runLo = sp.lo
		}
		runN += n
	}
	return flush(spans[len(spans)-1].hi)
}

// CountTokens returns how many tokens are stored, counted by etcd without
// sending them: a caller building an index of every token sizes it with
// this before Subscribe. Returns storage.ErrUnavailable when etcd does not
// answer.
func (s *Store) CountTokens(ctx context.Context) (int, error) {
	const op = "count tokens"
	if err := s.check(ctx, op); err != nil {
		return 0, err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(octx, s.key(dirTokens), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, s.fail(octx, op, err)
	}
	return int(resp.Count), nil
}

// Subscribe reads every stored token at one etcd revision R and calls apply
// with each, then follows an etcd watch from R+1 and calls apply with every
// change to a token committed afterwards, by any replica, in commit order,
// until ctx is done or the store is closed. It returns once the snapshot
// has been applied; a token write made through this Store returns only
// after its subscribers have applied it (or the request timeout passed).
//
// A last-use update (TouchLastUsed) is not a change and is not delivered.
// If the watch breaks it is reopened where it stopped; if etcd has
// compacted the history it needs, the store reads a new snapshot and
// delivers it as one Change with Reset set. The feed asks etcd for a
// progress notification every Config.ProgressInterval, so a quiet but
// healthy feed stays confirmed (see FeedConfirmedAt). apply is never
// called concurrently with itself and must not call back into the Store.
// Returns storage.ErrUnavailable if the snapshot cannot be read.
func (s *Store) Subscribe(ctx context.Context, apply func(storage.Change)) error {
	if err := s.check(ctx, "subscribe"); err != nil {
		return err
	}
	start := s.now()
	tokens, rev, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		apply(storage.Change{ID: t.ID, Token: t})
	}
	return s.follow(ctx, apply, rev, start)
}

// follow starts a feed that delivers the changes committed after rev, the
// snapshot's revision, read at time start.
func (s *Store) follow(ctx context.Context, apply func(storage.Change), rev int64, start time.Time) error {
	sub := &subscriber{apply: apply, applied: rev, advanced: make(chan struct{})}
	sub.confirmed.Store(start.UnixNano())
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return fmt.Errorf("subscribe: %w", storage.ErrClosed)
	}
	s.subs[sub] = struct{}{}
	s.feeds.Add(1)
	s.mu.Unlock()
	s.updateConfirmed()
	go s.run(ctx, sub)
	return nil
}

// run runs a subscriber's feed until ctx is done or the store closes.
func (s *Store) run(ctx context.Context, sub *subscriber) {
	defer s.feeds.Done()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		sub.end()
		s.updateConfirmed()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		err := s.watch(ctx, sub)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			s.log.Warn("etcd change feed fell behind compaction; reloading every token", slog.String("prefix", s.prefix))
			if err := s.reload(ctx, sub); err != nil {
				s.log.Warn("etcd change feed: reload failed", slog.Any("error", err))
			} else {
				backoff = 10 * time.Millisecond
				continue
			}
		} else if err != nil {
			s.log.Warn("etcd change feed interrupted; reconnecting", slog.Any("error", err))
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// reload replaces the subscriber's state with a fresh snapshot.
func (s *Store) reload(ctx context.Context, sub *subscriber) error {
	start := s.now()
	tokens, rev, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	sub.apply(storage.Change{Reset: true, Tokens: tokens})
	sub.advance(rev)
	sub.confirmed.Store(start.UnixNano())
	s.updateConfirmed()
	return nil
}

// watch follows the tokens from the revision after the subscriber's
// applied one until the watch ends, and returns why.
func (s *Store) watch(ctx context.Context, sub *subscriber) error {
	// A watch on a member that lost its leader would silently go quiet:
	// require one, so that it ends and is reopened on another member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	sub.mu.Lock()
	applied := sub.applied
	sub.mu.Unlock()
	prefix := s.key(dirTokens)
	// The watch starts at the applied revision, not the one after: etcd
	// answers no progress request while a watch waits for a revision
	// still to come, which would leave a quiet feed unconfirmed. The
	// applied revision's own events are skipped below.
	wch := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(applied), clientv3.WithPrevKV(), clientv3.WithProgressNotify())

	// Progress requests are answered on this watch's stream, which is
	// the one keyed by wctx's metadata; sent is when the last one went.
	var sent atomic.Int64
	go func() {
		t := time.NewTicker(s.progressInterval)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				now := s.now().UnixNano()
				rctx, rcancel := context.WithTimeout(wctx, s.progressInterval)
				if err := s.cli.RequestProgress(rctx); err == nil {
					sent.CompareAndSwap(0, now)
				}
				rcancel()
			}
		}
	}()

	for resp := range wch {
		if resp.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Canceled {
			return errors.New("watch canceled by the server")
		}
		if resp.IsProgressNotify() {
			// Every change up to the header's revision has been sent, so
			// the feed was complete when the request went out. The
			// revision itself is not taken as applied: etcd before 3.4.24
			// and 3.5.8 can send a progress notification ahead of events
			// it covers, which would then be skipped as already seen.
			if at := sent.Swap(0); at != 0 {
				sub.confirmed.Store(at)
				s.updateConfirmed()
			}
			continue
		}
		var last int64
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision <= applied {
				continue
			}
			if c, ok := s.change(prefix, ev); ok {
				sub.apply(c)
			}
			last = ev.Kv.ModRevision
		}
		if last > applied {
			applied = last
			sub.advance(last)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch closed")
}

// change turns a watch event into the Change it delivers, or reports that
// it delivers none: a put that only moved LastUsedTime.
func (s *Store) change(prefix string, ev *clientv3.Event) (storage.Change, bool) {
	id := strings.TrimPrefix(string(ev.Kv.Key), prefix)
	if ev.Type == mvccpb.DELETE {
		return storage.Change{ID: id}, true
	}
	t, err := decodeToken(ev.Kv.Value)
	if err != nil {
		// A record no replica could have written: treat the token as
		// gone rather than serve a guess.
		s.log.Error("etcd change feed: undecodable token record", slog.String("id", id), slog.Any("error", err))
		return storage.Change{ID: id}, true
	}
	if ev.PrevKv != nil && onlyLastUsedMoved(ev.PrevKv.Value, t) {
		return storage.Change{}, false
	}
	return storage.Change{ID: id, Token: t}, true
}

// onlyLastUsedMoved reports whether prev is the record of t but for
// LastUsedTime.
func onlyLastUsedMoved(prev []byte, t *storage.Token) bool {
	old, err := decodeToken(prev)
	if err != nil || old.LastUsedTime.Equal(t.LastUsedTime) {
		return false
	}
	old.LastUsedTime = t.LastUsedTime
	a, err1 := encodeToken(old)
	b, err2 := encodeToken(t)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
