package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// fillAndDamage adds enough tokens and audit events to the stopped server's
// database for bucket to span pages (fill), then damages that bucket's root
// page (damage).
func fillAndDamage(t *testing.T, dataDir, bucket string) {
	t.Helper()
	fill(t, dataDir)
	damage(t, dataDir, bucket)
}

// fill adds 300 tokens, each with an audit event, to the stopped server's
// database.
func fill(t *testing.T, dataDir string) {
	t.Helper()
	s, err := bolt.Open(filepath.Join(dataDir, "tokend.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 300 {
		tok := &storage.Token{
			ID: fmt.Sprintf("filler-%03d", i), Name: fmt.Sprintf("Filler %03d", i), Kind: storage.KindAPI,
			Type: storage.TypeReadOnly, CreateTime: now, UpdateTime: now, SecretHash: []byte(fmt.Sprintf("hash-%03d-%s", i, strings.Repeat("x", 24))),
		}
		ev := &storage.AuditEvent{Time: now, Operation: storage.AuditCreateToken, TargetID: tok.ID, TargetName: tok.Name}
		if err := s.CreateToken(context.Background(), tok, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// damage overwrites the element area of the root page of bucket with
// garbage, as a flipped disk page would.
func damage(t *testing.T, dataDir, bucket string) {
	t.Helper()
	damageAt(t, dataDir, rootPage(t, dataDir, bucket))
}

// page is where a page lies in the database file.
type page struct {
	offset int64
	size   int
}

// rootPage returns where the root page of bucket lies in the stopped
// server's database.
func rootPage(t *testing.T, dataDir, bucket string) page {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dataDir, "tokend.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var p page
	db.View(func(tx *bbolt.Tx) error {
		p.size = db.Info().PageSize
		p.offset = int64(tx.Bucket([]byte(bucket)).Root()) * int64(p.size)
		return nil
	})
	if p.offset == 0 {
		t.Fatalf("bucket %s is inline", bucket)
	}
	return p
}

// damageAt overwrites the elements of the page with garbage, keeping its
// header.
func damageAt(t *testing.T, dataDir string, p page) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dataDir, "tokend.db"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", p.size-16)), p.offset+16); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedDatabase: a damaged page met at start fails Start with an
// error (no panic); one met by a background loop (audit pruning, last-used
// flushing) stops the loop with a log line and turns /readyz to 503, while
// requests away from the damage are still served.
func TestDamagedDatabase(t *testing.T) {
	t.Run("AtStart", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		ts := startServer(t, server.Config{DataDir: dataDir})
		ts.shutdown(t)
		fillAndDamage(t, dataDir, "tokens")
		_, err := server.Start(context.Background(), server.Config{
			GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir, Logger: newTextLogger(&testkit.SyncBuffer{}),
		})
		if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("Start on a damaged file = %v, want an error wrapping ErrCorrupt saying the file is damaged", err)
		}
	})
	t.Run("InAuditPruning", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		ts := startServer(t, server.Config{DataDir: dataDir})
		root := ts.root
		ts.shutdown(t)
		fillAndDamage(t, dataDir, "audit")

		ts = startServer(t, server.Config{DataDir: dataDir})
		waitFor(t, "the pruning loop to stop", func() bool {
			return strings.Contains(ts.logs.String(), "audit pruning stopped: the database file is damaged")
		})
		if r := ts.do(t, http.MethodGet, "/readyz", "", ""); r.status != http.StatusServiceUnavailable {
			t.Errorf("/readyz = %d after damage, want 503", r.status)
		}
		if r := ts.do(t, http.MethodGet, "/v1/tokens?page_size=1", root, ""); r.status != http.StatusOK {
			t.Errorf("listing tokens away from the damage = %d, want 200", r.status)
		}
	})
	t.Run("InLastUsedFlush", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		ts := startServer(t, server.Config{DataDir: dataDir})
		root := ts.root
		ts.shutdown(t)
		fill(t, dataDir)
		tokensRoot := rootPage(t, dataDir, "tokens")

		ts = startServer(t, server.Config{DataDir: dataDir, FlushInterval: 20 * time.Millisecond, AuditRetention: -1})
		// The tokens are in memory now; damage their pages on disk (the
		// server maps the file, so it sees the change), then use the root
		// credential on a path that reads no page (Introspect answers from
		// memory), so that only the flush meets the damage.
		damageAt(t, dataDir, tokensRoot)
		if r := ts.do(t, http.MethodPost, "/v1/tokens:introspect", root, `{"token": "`+root+`"}`); r.status != http.StatusOK {
			t.Fatalf("introspect = %d: %s", r.status, r.body)
		}
		waitFor(t, "the flush loop to stop", func() bool {
			return strings.Contains(ts.logs.String(), "last-used flushing stopped: the database file is damaged")
		})
		if r := ts.do(t, http.MethodGet, "/readyz", "", ""); r.status != http.StatusServiceUnavailable {
			t.Errorf("/readyz = %d after damage, want 503", r.status)
		}
		// The last flush, at shutdown, meets the damage too, and says so.
		ts.stopped = true
		if err := ts.srv.Shutdown(context.Background()); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("Shutdown = %v, want the failed flush, wrapping ErrCorrupt", err)
		}
	})
}
