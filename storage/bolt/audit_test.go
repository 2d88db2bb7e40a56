package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokend/tokend/storage"
)

func TestAuditEventCodecRoundTrip(t *testing.T) {
	extremes := sampleEvent()
	extremes.Time, extremes.Operation = utc(math.MinInt64), 255
	extremes.Fields = []string{"", strings.Repeat("x", 300), "NUL\x00inside"}
	for _, tc := range []struct {
		name string
		key  []byte
		ev   *storage.AuditEvent
	}{
		{"EveryField", auditKey(42), sampleEvent()},
		{"ZeroValues", auditKey(0), &storage.AuditEvent{}},
		{"Extremes", auditKey(math.MaxUint64), extremes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := encodeAuditEvent(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAuditEvent(tc.key, rec)
			if err != nil {
				t.Fatal(err)
			}
			want := *tc.ev
			want.ID = auditID(tc.key)
			if !reflect.DeepEqual(got, &want) {
				t.Fatalf("round trip got %+v\nwant %+v", got, &want)
			}
		})
	}
}

func TestAuditEventCodecRefusesUnstorableTime(t *testing.T) {
	ev := sampleEvent()
	ev.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := encodeAuditEvent(ev); err == nil {
		t.Fatal("encodeAuditEvent with a time in year 9999 succeeded")
	}
}

func TestAuditEventCodecRejectsBadInput(t *testing.T) {
	key := auditKey(1)
	valid, err := encodeAuditEvent(sampleEvent())
	if err != nil {
		t.Fatal(err)
	}
	with := func(b []byte, i int, v byte) []byte {
		b = append([]byte(nil), b...)
		b[i] = v
		return b
	}
	type badCase struct {
		name     string
		key, rec []byte
	}
	cases := []badCase{
		{"Empty", key, nil},
		{"UnknownVersion", key, with(valid, 0, auditFormatV1+1)},
		{"VersionZero", key, with(valid, 0, 0)},
		{"TrailingByte", key, append(append([]byte(nil), valid...), 0)},
		{"BadTimeTag", key, with(valid, 1, 7)},
		{"KeyTooShort", key[:7], valid},
		{"KeyTooLong", append(auditKey(1), 0), valid},
		{"NoKey", nil, valid},
		{"HugeStringLength", key, append([]byte{auditFormatV1, timeZero}, binary.AppendUvarint(nil, math.MaxUint64)...)},
		{"HugeFieldCount", key, binary.AppendUvarint([]byte{auditFormatV1, timeZero, 0, 0, 1, 0, 0}, 1<<40)},
		{"Garbage", key, []byte("this is not an audit event record")},
	}
	for i := 1; i < len(valid); i++ {
		cases = append(cases, badCase{fmt.Sprintf("TruncatedAt%02d", i), key, valid[:i]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decodeAuditEvent(tc.key, tc.rec)
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("decodeAuditEvent = %+v, %v; want ErrCorrupt", ev, err)
			}
		})
	}
}

func FuzzDecodeAuditEvent(f *testing.F) {
	valid, err := encodeAuditEvent(sampleEvent())
	if err != nil {
		f.Fatal(err)
	}
	zero, err := encodeAuditEvent(&storage.AuditEvent{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(auditKey(1), valid)
	f.Add(auditKey(math.MaxUint64), zero)
	f.Add(auditKey(2), valid[:len(valid)/2])
	f.Add([]byte{1, 2, 3}, valid)
	f.Add(auditKey(3), []byte{})
	f.Add(auditKey(4), []byte{auditFormatV1, timeUnixNano, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(auditKey(5), binary.AppendUvarint([]byte{auditFormatV1, timeZero, 0, 0, 1, 0, 0}, 1<<40))
	f.Fuzz(func(t *testing.T, key, b []byte) {
		ev, err := decodeAuditEvent(key, b)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if ev.ID != auditID(key) {
			t.Fatalf("ID %q for key %x", ev.ID, key)
		}
		// Whatever decodes re-encodes to a record that decodes the same.
		rec, err := encodeAuditEvent(ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := decodeAuditEvent(key, rec)
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("re-decode = %+v, %v; want %+v", again, err, ev)
		}
	})
}

// TestAuditEventIDs pins down the ID encoding: the commit sequence number
// as 16 lower-case hex digits, so that string order is commit order.
func TestAuditEventIDs(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	setSequence := func(seq uint64) {
		t.Helper()
		if err := s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyAuditSequence, auditKey(seq))
		}); err != nil {
			t.Fatal(err)
		}
	}
	record := func() (string, error) {
		ev := &storage.AuditEvent{Operation: storage.AuditRegisterActions}
		err := s.RegisterActions(ctx, []storage.Action{{ID: "api::a.a.find"}}, 1000, ev)
		return ev.ID, err
	}
	format := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tc := range []struct {
		name  string
		setup func()
		want  string
	}{
		{"First", func() {}, "0000000000000001"},
		{"Second", func() {}, "0000000000000002"},
		{"PastOneByte", func() { setSequence(0xff) }, "0000000000000100"},
		{"PastFourBytes", func() { setSequence(0xffff_ffff) }, "0000000100000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			id, err := record()
			if err != nil {
				t.Fatal(err)
			}
			if id != tc.want || !format.MatchString(id) {
				t.Fatalf("ID %q, want %q", id, tc.want)
			}
		})
	}
	t.Run("Exhausted", func(t *testing.T) {
		setSequence(math.MaxUint64)
		tok := sampleToken()
		ev := sampleEvent()
		if err := s.CreateToken(ctx, tok, ev); err == nil {
			t.Fatal("CreateToken succeeded with the audit sequence exhausted")
		}
		if ev.ID != "" {
			t.Fatalf("failed write gave the event ID %q", ev.ID)
		}
		if _, err := s.GetToken(ctx, tok.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetToken after the failed create = %v, want ErrNotFound", err)
		}
	})
}

func TestAuditSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokend.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := sampleToken()
	boot := &storage.AuditEvent{Time: tok.CreateTime, Operation: storage.AuditBootstrap, Fields: []string{tok.Name}}
	if did, err := s.Bootstrap(ctx, []*storage.Token{tok}, boot); err != nil || !did {
		t.Fatalf("Bootstrap = %v, %v", did, err)
	}
	regen := sampleEvent()
	if _, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
		t.SecretHint = "tkda_New...wxyz"
		return nil
	}, regen); err != nil {
		t.Fatal(err)
	}
	before, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Events) != 2 {
		t.Fatalf("%d events before reopening, want 2", len(before.Events))
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
	after, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("after reopening listed %+v\nwant %+v", after.Events, before.Events)
	}
	filtered, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 10, TargetID: tok.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(filtered.Events) != 1 || filtered.Events[0].ID != regen.ID {
		t.Fatalf("events about %q after reopening: %+v, want only %q", tok.ID, filtered.Events, regen.ID)
	}

	// The sequence is kept too: pruning every event and reopening again
	// does not make an ID come round a second time.
	if n, err := s.PruneAuditEvents(ctx, tok.CreateTime.Add(1000*time.Hour)); err != nil || n != 2 {
		t.Fatalf("PruneAuditEvents = %d, %v; want 2, nil", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("second reopen: %v", err)
	}
	defer s.Close()
	del := sampleEvent()
	if err := s.DeleteToken(ctx, tok.ID, nil, del); err != nil {
		t.Fatal(err)
	}
	if del.ID <= regen.ID {
		t.Fatalf("event after pruning and reopening got ID %q, not after %q", del.ID, regen.ID)
	}
	if err := s.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptAuditEventIsReported(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	tok := sampleToken()
	if err := s.CreateToken(ctx, tok, sampleEvent()); err != nil {
		t.Fatal(err)
	}
	key := auditKey(1)
	var rec []byte
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		rec = append([]byte(nil), b.Get(key)...)
		return b.Put(key, []byte{auditFormatV1})
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []storage.AuditQuery{{Limit: 10}, {Limit: 10, TargetID: tok.ID}} {
		if _, err := s.ListAuditEvents(ctx, q); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("ListAuditEvents(%+v) over a damaged record = %v, want ErrCorrupt", q, err)
		}
	}
	if n, err := s.PruneAuditEvents(ctx, time.Now()); !errors.Is(err, storage.ErrCorrupt) || n != 0 {
		t.Errorf("PruneAuditEvents over a damaged record = %d, %v; want 0, ErrCorrupt", n, err)
	}
	// Leave the file consistent for the cleanup check.
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketAudit).Put(key, rec) }); err != nil {
		t.Fatal(err)
	}
}
