package service

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/tokend/tokend/storage/bolt"
)

// TestPauseGCRestoresTheSettingAfterTheLastHolder pauses the collector
// twice, overlapping, as two services replaying at once would, and checks
// that GOGC stays off until the last resume and then comes back as it was.
func TestPauseGCRestoresTheSettingAfterTheLastHolder(t *testing.T) {
	const setting = 137
	defer debug.SetGCPercent(debug.SetGCPercent(setting))

	first := pauseGC()
	second := pauseGC()
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC during the pause = %d, want off (-1)", got)
	}
	first()
	first() // resuming twice counts once
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC after the first of two resumes = %d, want still off (-1)", got)
	}
	second()
	if got := debug.SetGCPercent(setting); got != setting {
		t.Errorf("GOGC after the last resume = %d, want %d", got, setting)
	}
}

// TestNewReplaysIntoASizedIndexAndRestoresGC restarts a service over a
// bootstrapped bbolt file: the second New sizes its index from the
// store's count, finds the root secret, and leaves GOGC as it found it.
func TestNewReplaysIntoASizedIndexAndRestoresGC(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "tokend.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	first, err := New(ctx, Config{Store: db, HashKeys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := first.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}

	const setting = 137
	defer debug.SetGCPercent(debug.SetGCPercent(setting))
	second, err := New(ctx, Config{Store: db, HashKeys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close(ctx)
	if got := debug.SetGCPercent(setting); got != setting {
		t.Errorf("GOGC after New = %d, want %d as before", got, setting)
	}
	stored, err := db.CountTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored == 0 || second.TokenCount() != stored {
		t.Errorf("index holds %d tokens, store %d; want the same, and the bootstrap's", second.TokenCount(), stored)
	}
	if e, _ := second.find(root); e == nil {
		t.Error("the root secret is not found after the replay")
	}
}
