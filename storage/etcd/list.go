package etcd

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

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
	end := clientv3.GetPrefixRangeEnd(from)
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
		octx, cancel := s.opContext(ctx)
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listBatch)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		idx, err := s.cli.Get(octx, from, opts...)
		cancel()
		if err != nil {
			return nil, s.fail(octx, op, err)
		}
		if rev == 0 {
			rev = idx.Header.Revision
		}
		if len(idx.Kvs) == 0 {
			return page, nil
		}
		reads := make([]clientv3.Op, len(idx.Kvs))
		for i, kv := range idx.Kvs {
			reads[i] = clientv3.OpGet(s.tokenKey(string(kv.Value)), clientv3.WithRev(rev))
		}
		resp, err := s.txn(ctx, op, nil, reads, nil)
		if err != nil {
			return nil, err
		}
		for i, kv := range idx.Kvs {
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
		if !idx.More {
			return page, nil
		}
		from = string(idx.Kvs[len(idx.Kvs)-1].Key) + "\x00"
	}
}
