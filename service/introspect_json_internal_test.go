package service

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokend/tokend/storage"
)

// TestAppendTimestampMatchesProtojson: the last-use time spliced into the
// REST answer is written exactly as protojson writes a Timestamp.
func TestAppendTimestampMatchesProtojson(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 1).UTC(),
		time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 12, 0, 0, 100_000_000, time.UTC),
		time.Date(2026, 11, 27, 12, 0, 0, 120_000, time.UTC),
		time.Date(2026, 11, 27, 12, 0, 0, 123_456_789, time.UTC),
		time.Date(2026, 11, 27, 12, 0, 0, 1_000, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 0, time.UTC),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		times = append(times, time.Unix(0, r.Int64N(1<<62)).UTC())
	}
	for _, tm := range times {
		want, err := protojson.Marshal(timestamppb.New(tm))
		if err != nil {
			t.Fatal(err)
		}
		got := `"` + string(appendTimestamp(nil, tm.UnixNano())) + `"`
		if got != strings.TrimSpace(string(want)) {
			t.Errorf("appendTimestamp(%v) = %s, protojson writes %s", tm, got, want)
		}
	}
}

// TestViewJSONMatchesProtojson: the spliced JSON view and the copied proto
// view (viewAt) say the same as a view built from scratch, for a token in a
// rotation grace period, never used and used at various times. A field added
// to Token but forgotten by either shortcut shows up here.
func TestViewJSONMatchesProtojson(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tok := &storage.Token{
		ID: "id", Name: `quote " and \ slash`, Description: "line\nbreak", Kind: storage.KindAPI,
		Type: storage.TypeCustom, Permissions: []string{"a.find", "b.create"}, Lifespan: 7 * 24 * time.Hour,
		ExpireTime: now.Add(7 * 24 * time.Hour), CreateTime: now, UpdateTime: now, SecretHash: make([]byte, hashLen),
		SecretHint: "tkd_…abcd", PreviousSecretHash: append(make([]byte, hashLen-1), 1), PreviousExpireTime: now.Add(time.Hour),
	}
	e := newEntry(tok, nil)
	for _, used := range []time.Time{{}, now.Add(time.Second), now.Add(2*time.Second + 5*time.Millisecond)} {
		if !used.IsZero() {
			e.usage.lastUsed.Store(used.UnixNano())
		}
		want, err := jsonOptions.Marshal(e.viewAt(now))
		if err != nil {
			t.Fatal(err)
		}
		got := e.appendViewJSON(nil, now)
		var a, b map[string]any
		if err := json.Unmarshal(want, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &b); err != nil {
			t.Fatalf("spliced view is not JSON (%v): %s", err, got)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("last use %v: spliced view\n%s\nprotojson\n%s", used, got, want)
		}
	}
}
