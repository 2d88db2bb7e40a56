package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bbolt "go.etcd.io/bbolt"
)

// TestDamagedDatabaseAtStart: tokend started on a file with a page of
// garbage where its tokens are says so and exits non-zero, without a stack
// trace.
func TestDamagedDatabaseAtStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	args := []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-data-dir", dataDir,
		"-root-token-file", filepath.Join(t.TempDir(), "root")}
	p := startTokend(t, tokendEnv(), args...)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The three bootstrap tokens fit in the bucket's root page, which
	// lives in a page of its own once the bucket is not inline.
	path := filepath.Join(dataDir, "tokend.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var offset int64
	var pageSize int
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("tokens"))
		// Padding under a key no token has makes the bucket too big to
		// stay inline in its parent page.
		if err := b.Put([]byte("~padding"), make([]byte, 2048)); err != nil {
			return err
		}
		return nil
	})
	if err == nil {
		err = db.View(func(tx *bbolt.Tx) error {
			pageSize = db.Info().PageSize
			offset = int64(tx.Bucket([]byte("tokens")).Root()) * int64(pageSize)
			return nil
		})
	}
	db.Close()
	if err != nil || offset == 0 {
		t.Fatalf("locating the tokens page: %v (offset %d)", err, offset)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", pageSize-16)), offset+16); err != nil {
		t.Fatal(err)
	}
	f.Close()

	p = launch(t, tokendEnv(), args...)
	if code := p.wait(t); code == 0 {
		t.Fatalf("tokend started on a damaged file:\n%s", p.stderrText())
	}
	stderr := p.stderrText()
	if !strings.Contains(stderr, "database file is damaged") || !strings.Contains(stderr, "backup") {
		t.Errorf("stderr does not say the file is damaged and what to do:\n%s", stderr)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
		t.Errorf("stderr holds a stack trace:\n%s", stderr)
	}
}
