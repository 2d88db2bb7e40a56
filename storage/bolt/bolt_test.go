package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/storagetest"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokend.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		// Every test leaves a consistent file behind, whatever it did.
		if err := s.CheckConsistency(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("CheckConsistency: %v", err)
		}
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, _ := openTemp(t)
		return s
	})
}

// utc returns the time as the codec decodes it.
func utc(nanos int64) time.Time { return time.Unix(0, nanos).UTC() }

func sampleToken() *storage.Token {
	return &storage.Token{
		ID:           "tok_1",
		Name:         "Deploy bot",
		Description:  "used by CI",
		Kind:         storage.KindAdmin,
		Type:         storage.TypeCustom,
		Permissions:  []string{"tokend.token.find", "tokend.token.create"},
		Lifespan:     30 * 24 * time.Hour,
		ExpireTime:   utc(1_900_000_000_123_456_789),
		CreateTime:   utc(1_800_000_000_000_000_001),
		UpdateTime:   utc(1_800_000_100_000_000_000),
		LastUsedTime: utc(1_850_000_000_000_000_000),
		SecretHash:   []byte{0, 1, 2, 3, 0xff},
		SecretHint:   "tkda_AbC...wxyz",

		PreviousSecretHash: []byte{0xff, 3, 2, 1, 0},
		PreviousExpireTime: utc(1_800_000_100_000_000_000).Add(time.Hour),
		HashKeyID:          "hk1a2b3c4d",
	}
}

// sampleEvent returns an audit event about sampleToken with every field set.
func sampleEvent() *storage.AuditEvent {
	return &storage.AuditEvent{
		Time:       utc(1_800_000_100_000_000_000),
		CallerID:   "adm_1",
		CallerName: "Root",
		Operation:  storage.AuditRegenerateToken,
		TargetID:   "tok_1",
		TargetName: "Deploy bot",
		Fields:     []string{"secret_hint", "expire_time"},
	}
}

func TestOpenPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokend.db")
	registered := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(path, Options{Now: func() time.Time { return registered }})
	if err != nil {
		t.Fatal(err)
	}
	tok := sampleToken()
	if did, err := s.Bootstrap(ctx, []*storage.Token{tok}, nil); err != nil || !did {
		t.Fatalf("Bootstrap = %v, %v", did, err)
	}
	actions := []storage.Action{{ID: "api::a.a.find", Description: "find a"}, {ID: "api::b.b.find", Description: "find b"}}
	if err := s.RegisterActions(ctx, actions, storagetest.AnyCatalog, nil); err != nil {
		t.Fatal(err)
	}
	lastUsed := tok.LastUsedTime.Add(time.Hour)
	if err := s.TouchLastUsed(ctx, map[string]time.Time{tok.ID: lastUsed}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if err := s.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetToken(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := tok.Clone()
	want.LastUsedTime = lastUsed
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen got %+v\nwant %+v", got, want)
	}
	gotActions, err := s.ListActions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range actions {
		actions[i].RegisterTime = registered
	}
	if !reflect.DeepEqual(gotActions, actions) {
		t.Fatalf("actions after reopen %+v, want %+v", gotActions, actions)
	}
	if did, err := s.Bootstrap(ctx, []*storage.Token{}, nil); err != nil || did {
		t.Fatalf("Bootstrap after reopen = %v, %v; want false, nil", did, err)
	}
	// The indexes survived too: the name is still taken.
	other := sampleToken()
	other.ID, other.Name, other.SecretHash = "tok_2", "DEPLOY BOT", []byte{9}
	if err := s.CreateToken(ctx, other, nil); !errors.Is(err, storage.ErrNameTaken) {
		t.Fatalf("create with a taken name after reopen = %v, want ErrNameTaken", err)
	}
}

func TestOpenLockedFileTimesOut(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("second Open = %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("second Open took %v", elapsed)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("file mode %v, want 0600", mode)
	}
}

func TestOpenRefusesForeignSchema(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(tx *bbolt.Tx) error
		want    string
	}{
		{"NewerVersion", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.AppendUvarint(nil, schemaVersion+1))
		}, fmt.Sprintf("unsupported schema version %d", schemaVersion+1)},
		{"UnreadableVersion", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte{0x80})
		}, "unreadable schema version"},
		{"MissingVersion", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(keySchemaVersion)
		}, "unreadable schema version"},
		{"NotTokend", func(tx *bbolt.Tx) error {
			for _, name := range allBuckets {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			_, err := tx.CreateBucket([]byte("something else"))
			return err
		}, "not a tokend database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokend.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tc.prepare); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(path, Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error saying %q", err, tc.want)
			}
			// The refused file is not left locked.
			db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("file still locked after a refused Open: %v", err)
			}
			db.Close()
		})
	}
}

func TestTokenCodecRoundTrip(t *testing.T) {
	zero := &storage.Token{ID: "z"}
	extremes := sampleToken()
	extremes.ExpireTime, extremes.CreateTime, extremes.UpdateTime = utc(math.MinInt64), utc(math.MaxInt64), utc(0)
	extremes.Lifespan = -1
	extremes.Permissions = []string{"", strings.Repeat("x", 300)}
	for _, tc := range []struct {
		name string
		tok  *storage.Token
	}{
		{"EveryField", sampleToken()},
		{"ZeroValues", zero},
		{"Extremes", extremes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := encodeToken(tc.tok)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeToken(rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.tok) {
				t.Fatalf("round trip got %+v\nwant %+v", got, tc.tok)
			}
		})
	}
}

func TestTokenCodecRefusesUnstorableTimes(t *testing.T) {
	for _, tm := range []time.Time{utc(math.MinInt64).Add(-1), utc(math.MaxInt64).Add(1), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		tok := sampleToken()
		tok.ExpireTime = tm
		if _, err := encodeToken(tok); err == nil {
			t.Errorf("encodeToken with expire time %v succeeded", tm)
		}
	}
}

func TestTokenCodecRejectsBadInput(t *testing.T) {
	valid, err := encodeToken(sampleToken())
	if err != nil {
		t.Fatal(err)
	}
	with := func(b []byte, i int, v byte) []byte {
		b = append([]byte(nil), b...)
		b[i] = v
		return b
	}
	// Offsets in the sample record: version, then len(ID)=5 "tok_1", then
	// len(Name)=10 "Deploy bot", ...
	cases := []struct {
		name string
		in   []byte
	}{
		{"Empty", nil},
		{"UnknownVersion", with(valid, 0, tokenFormatV3+1)},
		{"Version1WithVersion2Fields", with(valid, 0, tokenFormatV1)},
		{"Version2WithVersion3Fields", with(valid, 0, tokenFormatV2)},
		{"VersionZero", with(valid, 0, 0)},
		{"TrailingByte", append(append([]byte(nil), valid...), 0)},
		{"StringLongerThanRecord", with(valid, 1, 0x7f)},
		{"HugeStringLength", append([]byte{tokenFormatV1}, binary.AppendUvarint(nil, math.MaxUint64)...)},
		{"OverlongVarint", append([]byte{tokenFormatV1}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"HugePermissionCount", func() []byte {
			b := []byte{tokenFormatV1, 0, 0, 0, 1, 1}
			return binary.AppendUvarint(b, 1<<40)
		}()},
		{"BadTimeTag", func() []byte {
			b := []byte{tokenFormatV1, 0, 0, 0, 1, 1, 0, 0}
			return append(b, 7)
		}()},
		{"Garbage", []byte("this is not a token record at all")},
	}
	for i := 1; i < len(valid); i++ {
		cases = append(cases, struct {
			name string
			in   []byte
		}{fmt.Sprintf("TruncatedAt%02d", i), valid[:i]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := decodeToken(tc.in)
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("decodeToken = %+v, %v; want ErrCorrupt", tok, err)
			}
		})
	}
}

// version1Record is sampleToken (without its previous secret) as the
// version 1 codec wrote it, before previous secrets existed. Files written
// then hold such records, so decodeToken must keep reading them.
const version1Record = "0105746f6b5f310a4465706c6f7920626f740a7573656420627920434902030211746f6b656e642e746f6b656e2e66696e6413746f6b656e642e746f6b656e2e637265617465808090f4a0da9a0901aab4ce89dffb93de34018280a0bbd29df1fa310180a0d7c2bba3f1fa31018080c8a7d8ccc2ac330500010203ff0f746b64615f4162432e2e2e7778797a"

// sampleVersion1 returns the token version1Record holds.
func sampleVersion1() *storage.Token {
	tok := sampleToken()
	tok.PreviousSecretHash, tok.PreviousExpireTime, tok.HashKeyID = nil, time.Time{}, ""
	return tok
}

func TestTokenCodecReadsVersion1(t *testing.T) {
	rec, err := hex.DecodeString(version1Record)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeToken(rec)
	if err != nil {
		t.Fatal(err)
	}
	if want := sampleVersion1(); !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v\nwant %+v", got, want)
	}
	// Re-encoding writes the current version, which reads back the same.
	again, err := encodeToken(got)
	if err != nil {
		t.Fatal(err)
	}
	if again[0] != tokenFormatV3 {
		t.Fatalf("re-encoded with format version %d, want %d", again[0], tokenFormatV3)
	}
	if got2, err := decodeToken(again); err != nil || !reflect.DeepEqual(got2, got) {
		t.Fatalf("re-decoded %+v, %v; want %+v", got2, err, got)
	}
	for i := range len(rec) {
		if _, err := decodeToken(rec[:i]); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("decodeToken of %d of %d bytes of a version 1 record = %v, want ErrCorrupt", i, len(rec), err)
		}
	}
}

func TestOpenUpgradesVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokend.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Turn the file into one written by the version 1 layout: its buckets,
	// its schema version, and a token in the version 1 record format.
	old := sampleVersion1()
	rec, err := hex.DecodeString(version1Record)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketAudit, bucketAuditTargets} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		id := []byte(old.ID)
		for _, e := range []struct{ bucket, key, value []byte }{
			{bucketMeta, keySchemaVersion, binary.AppendUvarint(nil, 1)},
			{bucketTokens, id, rec},
			{bucketTokenNames, []byte(storage.NameKey(old.Name)), id},
			{bucketTokenHashes, old.SecretHash, id},
			{bucketTokenCreated, createdKey(old.CreateTime, old.ID), []byte{}},
		} {
			if err := tx.Bucket(e.bucket).Put(e.key, e.value); err != nil {
				return err
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

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 1 file: %v", err)
	}
	defer s.Close()
	if err := s.CheckConsistency(); err != nil {
		t.Fatalf("after upgrade: %v", err)
	}
	got, err := s.GetToken(ctx, old.ID)
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("GetToken after upgrade = %+v, %v; want %+v", got, err, old)
	}
	// The upgraded file takes what version 2 added.
	ev := sampleEvent()
	updated, err := s.UpdateToken(ctx, old.ID, func(t *storage.Token) error {
		t.PreviousSecretHash, t.PreviousExpireTime = t.SecretHash, t.UpdateTime.Add(time.Hour)
		t.SecretHash = []byte("new hash")
		return nil
	}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID == "" || !bytes.Equal(updated.PreviousSecretHash, old.SecretHash) {
		t.Fatalf("update after upgrade = %+v, event ID %q", updated, ev.ID)
	}
	if err := s.CheckConsistency(); err != nil {
		t.Fatalf("after a write to the upgraded file: %v", err)
	}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchemaVersion); !bytes.Equal(v, binary.AppendUvarint(nil, schemaVersion)) {
			return fmt.Errorf("schema version %x after upgrade, want %d", v, schemaVersion)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestActionCodec(t *testing.T) {
	a := storage.Action{ID: "api::a.a.find", Description: "find a", RegisterTime: utc(1_700_000_000_000_000_000)}
	rec, err := encodeAction(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAction(a.ID, rec)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, a)
	}
	for i := range len(rec) {
		if _, err := decodeAction(a.ID, rec[:i]); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("decodeAction of %d of %d bytes = %v, want ErrCorrupt", i, len(rec), err)
		}
	}
	if _, err := decodeAction(a.ID, append(rec, 0)); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("decodeAction with a trailing byte = %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeToken(f *testing.F) {
	valid, err := encodeToken(sampleToken())
	if err != nil {
		f.Fatal(err)
	}
	zero, err := encodeToken(&storage.Token{})
	if err != nil {
		f.Fatal(err)
	}
	v1, err := hex.DecodeString(version1Record)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(zero)
	f.Add(v1)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte{tokenFormatV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := decodeToken(b)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to a record that decodes the same.
		rec, err := encodeToken(tok)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := decodeToken(rec)
		if err != nil || !reflect.DeepEqual(again, tok) {
			t.Fatalf("re-decode = %+v, %v; want %+v", again, err, tok)
		}
	})
}

func TestCheckConsistencyFindsDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(tx *bbolt.Tx, tok *storage.Token) error
		want   string
	}{
		{"MissingNameEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenNames).Delete([]byte(storage.NameKey(tok.Name)))
		}, "name index"},
		{"MissingHashEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenHashes).Delete(tok.SecretHash)
		}, "hash index"},
		{"MissingCreatedEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenCreated).Delete(createdKey(tok.CreateTime, tok.ID))
		}, "create-time index"},
		{"DanglingHashEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenHashes).Put([]byte("stale hash"), []byte("gone"))
		}, "missing token"},
		{"DanglingCreatedEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenCreated).Put(createdKey(tok.CreateTime, "gone"), []byte{})
		}, "missing token"},
		{"NameEntryForOtherName", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenNames).Put([]byte("alias"), []byte(tok.ID))
		}, "another key"},
		{"CorruptRecord", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokens).Put([]byte(tok.ID), []byte{tokenFormatV1, 0xff})
		}, "corrupt"},
		{"CorruptAction", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketActions).Put([]byte("a.b"), []byte{9})
		}, "action"},
		{"MissingPreviousHashEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenHashes).Delete(tok.PreviousSecretHash)
		}, "previous hash index"},
		{"PreviousHashEntryForOtherToken", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketTokenHashes).Put(tok.PreviousSecretHash, []byte("gone"))
		}, "missing token"},
		{"PreviousEqualsCurrent", func(tx *bbolt.Tx, tok *storage.Token) error {
			same := tok.Clone()
			same.PreviousSecretHash = same.SecretHash
			rec, err := encodeToken(same)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketTokens).Put([]byte(tok.ID), rec)
		}, "previous hash equals the current one"},
		{"MissingAuditTargetEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketAuditTargets).Delete(auditTargetKey(tok.ID, auditKey(1)))
		}, "audit_targets entry for target"},
		{"DanglingAuditTargetEntry", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketAuditTargets).Put(auditTargetKey(tok.ID, auditKey(99)), []byte{})
		}, "missing audit event"},
		{"AuditTargetEntryForOtherTarget", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketAuditTargets).Put(auditTargetKey("other", auditKey(1)), []byte{})
		}, "which is about"},
		{"MalformedAuditTargetKey", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketAuditTargets).Put([]byte("short"), []byte{})
		}, "malformed key"},
		{"CorruptAuditEvent", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketAudit).Put(auditKey(1), []byte{auditFormatV1, 0xff})
		}, "audit event 0000000000000001"},
		{"AuditEventAfterSequence", func(tx *bbolt.Tx, tok *storage.Token) error {
			rec, err := encodeAuditEvent(&storage.AuditEvent{Operation: storage.AuditRegisterActions})
			if err != nil {
				return err
			}
			return tx.Bucket(bucketAudit).Put(auditKey(7), rec)
		}, "after the audit sequence"},
		{"CorruptAuditSequence", func(tx *bbolt.Tx, tok *storage.Token) error {
			return tx.Bucket(bucketMeta).Put(keyAuditSequence, []byte{1})
		}, "audit sequence"},
		{"IDMismatch", func(tx *bbolt.Tx, tok *storage.Token) error {
			other := tok.Clone()
			other.ID = "other"
			rec, err := encodeToken(other)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketTokens).Put([]byte(tok.ID), rec)
		}, "record has id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokend.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tok := sampleToken()
			if err := s.CreateToken(context.Background(), tok, sampleEvent()); err != nil {
				t.Fatal(err)
			}
			if err := s.CheckConsistency(); err != nil {
				t.Fatalf("before damage: %v", err)
			}
			if err := s.db.Update(func(tx *bbolt.Tx) error { return tc.damage(tx, tok) }); err != nil {
				t.Fatal(err)
			}
			err = s.CheckConsistency()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckConsistency = %v, want an error mentioning %q", err, tc.want)
			}
			for _, h := range [][]byte{tok.SecretHash, tok.PreviousSecretHash} {
				if strings.Contains(err.Error(), string(h)) {
					t.Fatalf("CheckConsistency error shows a secret hash: %v", err)
				}
			}
		})
	}
}

func TestCorruptRecordIsReported(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	tok := sampleToken()
	if err := s.CreateToken(ctx, tok, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTokens).Put([]byte(tok.ID), []byte{tokenFormatV1})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, tok.ID); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("GetToken of a damaged record = %v, want ErrCorrupt", err)
	}
	if _, err := s.ListTokens(ctx, storage.ListQuery{Limit: 10}); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("ListTokens over a damaged record = %v, want ErrCorrupt", err)
	}
	// Leave the file consistent for the cleanup check.
	rec, err := encodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketTokens).Put([]byte(tok.ID), rec) }); err != nil {
		t.Fatal(err)
	}
}

func TestContextDone(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CreateToken(ctx, sampleToken(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateToken with a done ctx = %v, want context.Canceled", err)
	}
	if _, err := s.GetToken(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetToken with a done ctx = %v, want context.Canceled", err)
	}
}

func BenchmarkDecodeToken(b *testing.B) {
	rec, err := encodeToken(sampleToken())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeToken(rec); err != nil {
			b.Fatal(err)
		}
	}
}
