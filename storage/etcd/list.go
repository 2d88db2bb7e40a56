package etcd

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
)

// Cursor markers: the first byte of a decoded cursor, so that a cursor of
// one listing is refused by the others.
const (
	cursorByName    = 'n'
	cursorByCreated = 'c'
	cursorAudit     = 'a'
)

// listBatch is how many index entries ListTokens reads at a time: whole
// pages when no filter applies, more when filters skip tokens.
const listBatch = 100

// ListTokens returns up to q.Limit tokens matching q's filters, in q.Order,
// starting after the cursor q.After. Every page is read at one etcd
// revision, so a page is a consistent snapshot. The Next cursor names the
// index key of the last returned token, so the next page resumes right after
// it even if tokens were created or deleted in between. Returns an error
// wrapping storage.ErrBadCursor for a cursor this order did not produce,
// storage.ErrUnavailable, and an error for a non-positive limit or an
// unknown order.
func (s *Store) ListTokens(ctx context.Context, q storage.ListQuery) (*storage.ListPage, error) {
	const op = "list tokens"
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%s: limit %d: limit must be positive", op, q.Limit)
	}
	var (
		marker byte
		dir    string
	)
	switch q.Order {
	case storage.OrderByName:
		marker, dir = cursorByName, dirNames
	case storage.OrderByCreateTimeDesc:
		marker, dir = cursorByCreated, dirCreated
	default:
		return nil, fmt.Errorf("%s: unknown order %d", op, q.Order)
	}
	from := s.key(dir)
	if q.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.After)
		if err != nil || len(b) < 2 || b[0] != marker {
			return nil, fmt.Errorf("%s: %w", op, storage.ErrBadCursor)
		}
		// The first key after the cursor's own.
		from = s.key(dir + string(b[1:]) + "\x00")
	}

	page := &storage.ListPage{}
	var rev int64 // the revision every read of this page is made at
	last := ""    // index key (under dir) of the last token on the page
	for {
		entries, more, err := s.indexBatch(ctx, op, dir, from, &rev)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			return page, nil
		}
		reads := make([]clientv3.Op, len(entries))
		for i, kv := range entries {
			reads[i] = clientv3.OpGet(s.tokenKey(string(kv.Value)), clientv3.WithRev(rev))
		}
		resp, err := s.txn(ctx, op, nil, reads, nil)
		if err != nil {
			return nil, err
		}
		for i, kv := range entries {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				return nil, fmt.Errorf("%s: %w: index entry %q for missing token %q", op, storage.ErrCorrupt, kv.Key, kv.Value)
			}
			t, err := decodeToken(kvs[0].Value)
			if err != nil {
				return nil, fmt.Errorf("%s: token %q: %w", op, kv.Value, err)
			}
			if !q.Matches(t) {
				continue
			}
			if len(page.Tokens) == q.Limit {
				page.Next = base64.RawURLEncoding.EncodeToString(append([]byte{marker}, last...))
				return page, nil
			}
			page.Tokens = append(page.Tokens, t)
			last = strings.TrimPrefix(string(kv.Key), s.key(dir))
		}
		if !more {
			return page, nil
		}
		from = string(entries[len(entries)-1].Key) + "\x00"
	}
}

// fenceBatch is how many fences indexBatch reads at a time: split points
// for about fenceBatch*fenceEvery index entries, a few pages' worth.
const fenceBatch = 8

// indexBatch returns up to listBatch entries of the index dir from the key
// from (inclusive), read at the revision *rev (the current one if *rev is
// 0, which it then sets), and whether entries may follow. It reads the
// fences after from (see dirFences), then the ranges between them in one
// transaction, each limited to listBatch entries: the server walks the
// fences to the index's end, one key in fenceEvery, and of the index only
// the ranges read, never the rest of it.
func (s *Store) indexBatch(ctx context.Context, op, dir, from string, rev *int64) ([]*mvccpb.KeyValue, bool, error) {
	base, fences := s.key(dir), s.key(dirFences+dir)
	end := clientv3.GetPrefixRangeEnd(base)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(fences)), clientv3.WithLimit(fenceBatch), clientv3.WithKeysOnly()}
		if *rev != 0 {
			opts = append(opts, clientv3.WithRev(*rev))
		}
		octx, cancel := s.opContext(ctx)
		// The first fence after from: a fence at from itself splits nothing.
		fresp, err := s.cli.Get(octx, fences+strings.TrimPrefix(from, base)+"\x00", opts...)
		cancel()
		if err != nil {
			return nil, false, s.fail(octx, op, err)
		}
		if *rev == 0 {
			*rev = fresp.Header.Revision
		}
		bounds := make([]string, 0, len(fresp.Kvs)+1)
		for _, kv := range fresp.Kvs {
			bounds = append(bounds, base+strings.TrimPrefix(string(kv.Key), fences))
		}
		if !fresp.More {
			bounds = append(bounds, end)
		}
		reads := make([]clientv3.Op, 0, len(bounds))
		lo := from
		for _, hi := range bounds {
			if hi > lo {
				reads = append(reads, clientv3.OpGet(lo, clientv3.WithRange(hi), clientv3.WithRev(*rev), clientv3.WithLimit(listBatch)))
			}
			lo = hi
		}
		resp, err := s.txn(ctx, op, nil, reads, nil)
		if err != nil {
			return nil, false, err
		}
		var entries []*mvccpb.KeyValue
		for _, r := range resp.Responses {
			rr := r.GetResponseRange()
			entries = append(entries, rr.Kvs...)
			if rr.More || len(entries) >= listBatch {
				// A range cut short, or enough: the caller goes on after
				// the last entry returned.
				return entries[:min(len(entries), listBatch)], true, nil
			}
		}
		if len(entries) > 0 || !fresp.More {
			return entries, fresp.More, nil
		}
		// Only fences without entries between them (fences of a prefix
		// upgraded while another replica wrote): on from the last.
		from = lo
	}
}
