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

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// fillAndDamage adds enough tokens and audit events to the stopped server's
// database for bucket to span pages, then overwrites the element area of
// that bucket's root page with garbage, as a flipped disk page would.
func fillAndDamage(t *testing.T, dataDir, bucket string) {
	t.Helper()
	path := filepath.Join(dataDir, "tokend.db")
	s, err := bolt.Open(path, bolt.Options{})
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
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var offset int64
	var pageSize int
	db.View(func(tx *bbolt.Tx) error {
		pageSize = db.Info().PageSize
		offset = int64(tx.Bucket([]byte(bucket)).Root()) * int64(pageSize)
		return nil
	})
	db.Close()
	if offset == 0 {
		t.Fatalf("bucket %s is inline", bucket)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", pageSize-16)), offset+16); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedDatabase: a damaged page met at start fails Start with an
// error (no panic); one met by the audit-pruning loop stops the loop with a
// log line and turns /readyz to 503, while requests away from the damage are
// still served.
func TestDamagedDatabase(t *testing.T) {
	t.Run("AtStart", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		ts := startServer(t, server.Config{DataDir: dataDir})
		ts.shutdown(t)
		fillAndDamage(t, dataDir, "tokens")
		_, err := server.Start(context.Background(), server.Config{
			GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir, Logger: newTextLogger(&syncBuffer{}),
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
}
