package bolt

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// Cursor markers: the first byte of a decoded cursor, so that a cursor of
// one order, or of the audit listing (see ListAuditEvents), is refused by
// the others.
const (
	cursorByName        = 'n'
	cursorByCreatedDesc = 'c'
	cursorAudit         = 'a'
)

// ListTokens returns up to q.Limit tokens matching q's filters, in q.Order,
// starting after the cursor q.After. The page's Next cursor is set when a
// further matching token exists; it names the index key of the last returned
// token, so the next page resumes right after it even if tokens were created
// or deleted in between. Returns an error wrapping storage.ErrBadCursor for a
// cursor this order did not produce, and an error for a non-positive limit
// or an unknown order.
func (s *Store) ListTokens(ctx context.Context, q storage.ListQuery) (*storage.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list tokens: limit %d: limit must be positive", q.Limit)
	}
	var (
		marker   byte
		index    []byte
		reverse  bool
		minAfter int // shortest valid index key
	)
	switch q.Order {
	case storage.OrderByName:
		marker, index, minAfter = cursorByName, bucketTokenNames, 1
	case storage.OrderByCreateTimeDesc:
		marker, index, reverse, minAfter = cursorByCreatedDesc, bucketTokenCreated, true, createdKeyLen+1
	default:
		return nil, fmt.Errorf("list tokens: unknown order %d", q.Order)
	}
	var after []byte
	if q.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.After)
		if err != nil || len(b) < 1+minAfter || b[0] != marker {
			return nil, fmt.Errorf("list tokens: %w", storage.ErrBadCursor)
		}
		after = b[1:]
	}

	page := &storage.ListPage{}
	err := s.view(ctx, "list tokens", func(tx *bbolt.Tx) error {
		tokens := tx.Bucket(bucketTokens)
		c := tx.Bucket(index).Cursor()
		step := c.Next
		if reverse {
			step = c.Prev
		}
		k, v := start(c, after, reverse)
		var last []byte // index key of the last token put on the page
		for ; k != nil; k, v = step() {
			id := v
			if reverse {
				id = k[createdKeyLen:]
			}
			rec := tokens.Get(id)
			if rec == nil {
				return fmt.Errorf("%w: index %s entry for missing token %q", storage.ErrCorrupt, index, id)
			}
			t, err := decodeToken(rec)
			if err != nil {
				return fmt.Errorf("token %q: %w", id, err)
			}
			if !q.Matches(t) {
				continue
			}
			if len(page.Tokens) == q.Limit {
				// A further match exists: the next page starts after last.
				// last still points into the transaction's pages, which
				// stay valid until View returns.
				page.Next = base64.RawURLEncoding.EncodeToString(append([]byte{marker}, last...))
				return nil
			}
			page.Tokens = append(page.Tokens, t)
			last = k
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// start positions c on the first key to list: the first (or, in reverse, the
// last) key when after is nil, otherwise the first key past after in the
// direction of listing. after need not exist any more.
func start(c *bbolt.Cursor, after []byte, reverse bool) (k, v []byte) {
	switch {
	case after == nil && reverse:
		return c.Last()
	case after == nil:
		return c.First()
	case reverse:
		// Seek lands on the first key >= after, or past the end.
		if k, _ := c.Seek(after); k == nil {
			return c.Last()
		}
		return c.Prev()
	default:
		k, v := c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			return c.Next()
		}
		return k, v
	}
}
