package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

// version2Record returns t's record as the version 2 codec wrote it: the
// version 3 record without its hash key id.
func version2Record(t *testing.T, tok *storage.Token) []byte {
	t.Helper()
	if tok.HashKeyID != "" {
		t.Fatal("a version 2 record has no hash key id")
	}
	rec, err := encodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	rec = rec[:len(rec)-1] // the empty hash key id
	rec[0] = tokenFormatV2
	return rec
}

// writeVersion2File writes a file in the version 2 layout holding tokens,
// each name indexed under the key oldKey gives it, as a build with that name
// rule did.
func writeVersion2File(t *testing.T, path string, tokens []*storage.Token, oldKey func(string) string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketTokens, bucketTokenNames, bucketTokenHashes, bucketTokenCreated, bucketActions, bucketAudit, bucketAuditTargets} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.AppendUvarint(nil, 2)); err != nil {
			return err
		}
		for _, tok := range tokens {
			id := []byte(tok.ID)
			for _, e := range []struct{ bucket, key, value []byte }{
				{bucketTokens, id, version2Record(t, tok)},
				{bucketTokenNames, []byte(oldKey(tok.Name)), id},
				{bucketTokenHashes, tok.SecretHash, id},
				{bucketTokenCreated, createdKey(tok.CreateTime, tok.ID), []byte{}},
			} {
				if err := tx.Bucket(e.bucket).Put(e.key, e.value); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeRebuildsNameIndexLosingNothing(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	long := strings.Repeat("Ä", 100)
	names := []string{
		"Deploy", "DEPLOY", // one name in two cases, from a build whose index told case apart
		"Root", "Ｒｏｏｔ", // plain and full-width: one name once width is folded
		"ﬁle sync", "file sync", // a ligature
		long, strings.ToLower(long), // renaming must stay within 100 characters
		"Alone",
	}
	var tokens []*storage.Token
	for i, name := range names {
		tok := sampleToken()
		tok.ID = "tok_" + string(rune('a'+i))
		tok.Name = name
		tok.CreateTime = start.Add(time.Duration(i) * time.Minute)
		tok.SecretHash, tok.PreviousSecretHash, tok.PreviousExpireTime, tok.HashKeyID = []byte(tok.ID), nil, time.Time{}, ""
		tokens = append(tokens, tok)
	}
	path := filepath.Join(t.TempDir(), "tokend.db")
	// The old index: exact names, so every one of them was accepted.
	writeVersion2File(t, path, tokens, func(name string) string { return name })

	upgradeTime := start.Add(time.Hour)
	s, err := Open(path, Options{Now: func() time.Time { return upgradeTime }})
	if err != nil {
		t.Fatalf("Open of a version 2 file: %v", err)
	}
	if err := s.CheckConsistency(); err != nil {
		t.Fatalf("after upgrade: %v", err)
	}

	// What the rule says must happen: oldest first, a later token whose
	// key is taken gets the first free " (duplicate N)" name.
	taken := map[string]bool{}
	wantName := map[string]string{}
	for _, tok := range tokens {
		name := tok.Name
		for n := 2; taken[storage.NameKey(name)]; n++ {
			name = withSuffix(tok.Name, " (duplicate "+string(rune('0'+n))+")")
		}
		taken[storage.NameKey(name)] = true
		wantName[tok.ID] = name
	}
	// Whatever the name rule, these two always meet.
	if got := wantName["tok_b"]; got != "DEPLOY (duplicate 2)" {
		t.Fatalf("expected name of DEPLOY = %q", got)
	}
	if got := []rune(wantName["tok_h"]); len(got) != 100 || !strings.HasSuffix(string(got), " (duplicate 2)") {
		t.Fatalf("expected name of the long lower-case name = %q (%d characters)", string(got), len(got))
	}

	renamed := map[string]bool{}
	for _, old := range tokens {
		got, err := s.GetToken(ctx, old.ID)
		if err != nil {
			t.Fatalf("token %s lost in the upgrade: %v", old.ID, err)
		}
		if got.Name != wantName[old.ID] {
			t.Errorf("token %s named %q after the upgrade, want %q", old.ID, got.Name, wantName[old.ID])
		}
		if !bytes.Equal(got.SecretHash, old.SecretHash) || got.Type != old.Type || len(got.Permissions) != len(old.Permissions) {
			t.Errorf("token %s changed beyond its name: %+v", old.ID, got)
		}
		if got.Name != old.Name {
			renamed[old.ID] = true
		}
	}
	page, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]bool{}
	for _, ev := range page.Events {
		if ev.CallerName != UpgradeCallerName || ev.Operation != storage.AuditUpdateToken || !ev.Time.Equal(upgradeTime) ||
			ev.TargetName != wantName[ev.TargetID] || len(ev.Fields) != 1 || ev.Fields[0] != "name" {
			t.Errorf("unexpected audit event %+v", ev)
		}
		audited[ev.TargetID] = true
	}
	if len(audited) != len(renamed) {
		t.Errorf("audit events for %v, renamed %v", audited, renamed)
	}
	for id := range renamed {
		if !audited[id] {
			t.Errorf("token %s renamed without an audit event", id)
		}
	}
	// The freed names index as the rule says: each old name finds its token.
	for _, tok := range tokens {
		if wantName[tok.ID] != tok.Name {
			continue
		}
		err := s.CreateToken(ctx, &storage.Token{ID: "new", Name: tok.Name, SecretHash: []byte("new hash")}, nil)
		if err == nil {
			t.Fatalf("name %q free again after the upgrade", tok.Name)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A second open renames nothing more.
	s, err = Open(path, Options{Now: func() time.Time { return upgradeTime.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Events) != len(page.Events) {
		t.Fatalf("reopening recorded %d more audit events", len(again.Events)-len(page.Events))
	}
}

func TestRebuildWhenNameRuleChanges(t *testing.T) {
	s, path := openTemp(t)
	if err := s.CreateToken(context.Background(), sampleToken(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A build with another name rule wrote the index: its probe differs.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		tok := sampleToken()
		names := tx.Bucket(bucketTokenNames)
		if err := names.Delete([]byte(storage.NameKey(tok.Name))); err != nil {
			return err
		}
		if err := names.Put([]byte("old rule: "+tok.Name), []byte(tok.ID)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyNameKeyProbe, []byte("old rule"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckConsistency(); err != nil {
		t.Fatalf("after reopening with this build's rule: %v", err)
	}
}
