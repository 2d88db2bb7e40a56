package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// damagedFile returns a closed database file holding enough tokens and
// audit events for their buckets to span pages, and the offset and size of
// the root page of bucket.
func damagedFile(t *testing.T, bucket []byte) (path string, offset int64, pageSize int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "tokend.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 300 {
		tok := sampleToken()
		tok.ID, tok.Name = fmt.Sprintf("tok_%03d", i), fmt.Sprintf("Token %03d", i)
		tok.SecretHash, tok.PreviousSecretHash = []byte(tok.ID), nil
		ev := sampleEvent()
		ev.TargetID = tok.ID
		if err := s.CreateToken(ctx, tok, ev); err != nil {
			t.Fatal(err)
		}
	}
	var root uint64
	if err := s.db.View(func(tx *bbolt.Tx) error {
		root = uint64(tx.Bucket(bucket).Root())
		pageSize = tx.DB().Info().PageSize
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if root == 0 {
		t.Fatalf("bucket %s is inline: the test needs it on its own pages", bucket)
	}
	return path, int64(root) * int64(pageSize), pageSize
}

// overwrite writes b at offset in the file at path.
func overwrite(t *testing.T, path string, offset int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The ways a page was seen damaged: flipped header bytes (type flags,
// element count) and a page of garbage.
var pageDamages = []struct {
	name   string
	damage func(page int) (skip int, b []byte)
}{
	{"Flags", func(int) (int, []byte) { return 8, []byte{0x5a, 0xa5} }},
	{"Count", func(int) (int, []byte) { return 10, []byte{0xff, 0xff} }},
	{"Elements", func(page int) (int, []byte) { return 16, []byte(strings.Repeat("\xff", page-16)) }},
}

// wantDamageError fails t unless err reports damage as storage.ErrCorrupt.
func wantDamageError(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("%s on a damaged file = %v, want an error wrapping ErrCorrupt", what, err)
	}
}

func TestDamagedTokenPagesAreErrorsNotPanics(t *testing.T) {
	for _, tc := range pageDamages {
		t.Run(tc.name, func(t *testing.T) {
			path, offset, pageSize := damagedFile(t, bucketTokens)
			skip, b := tc.damage(pageSize)
			overwrite(t, path, offset+int64(skip), b)

			s, err := Open(path, Options{})
			if err != nil {
				// Damage seen while opening is fine, as long as it says so.
				wantDamageError(t, "Open", err)
				return
			}
			defer s.Close()
			err = s.Subscribe(context.Background(), func(storage.Change) {})
			wantDamageError(t, "Subscribe (the start-up replay)", err)
			wantDamageError(t, "Ping after meeting damage", s.Ping(context.Background()))
		})
	}
}

func TestDamagedAuditPagesAreErrorsNotPanics(t *testing.T) {
	for _, tc := range pageDamages {
		t.Run(tc.name, func(t *testing.T) {
			path, offset, pageSize := damagedFile(t, bucketAudit)
			skip, b := tc.damage(pageSize)
			overwrite(t, path, offset+int64(skip), b)

			s, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open with damage only in the audit trail: %v", err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping before anything met the damage: %v", err)
			}
			// Pruning everything walks every audit page, as the server's
			// pruning loop does.
			_, err = s.PruneAuditEvents(ctx, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
			wantDamageError(t, "PruneAuditEvents", err)
			wantDamageError(t, "Ping after meeting damage", s.Ping(ctx))
			// Reads that do not touch the damage still work.
			if _, err := s.GetToken(ctx, "tok_001"); err != nil {
				t.Fatalf("GetToken away from the damage: %v", err)
			}
		})
	}
}
