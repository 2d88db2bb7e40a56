package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
)

// The audit trail: every write stores its event in its own transaction, or
// none when it fails; IDs follow commit order; listing, filtering and
// pruning.

// event returns an audit event of op about tok (none if nil), made by an
// admin token, at base plus i seconds.
func event(op storage.AuditOperation, tok *storage.Token, i int, fields ...string) *storage.AuditEvent {
	ev := &storage.AuditEvent{
		Time:       base.Add(time.Duration(i) * time.Second),
		CallerID:   "id-Admin",
		CallerName: "Admin",
		Operation:  op,
		Fields:     fields,
	}
	if tok != nil {
		ev.TargetID, ev.TargetName = tok.ID, tok.Name
	}
	return ev
}

func cloneEvent(ev *storage.AuditEvent) *storage.AuditEvent {
	c := *ev
	c.Fields = slices.Clone(ev.Fields)
	return &c
}

// diffEvent describes how got differs from want, or returns "". Times are
// compared with Equal, and nil and empty slices are equal.
func diffEvent(got, want *storage.AuditEvent) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("got %v, want %v", got, want)
		}
		return ""
	}
	var d []string
	field := func(name string, equal bool, g, w any) {
		if !equal {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, g, w))
		}
	}
	field("ID", got.ID == want.ID, got.ID, want.ID)
	field("Time", got.Time.Equal(want.Time), got.Time, want.Time)
	field("CallerID", got.CallerID == want.CallerID, got.CallerID, want.CallerID)
	field("CallerName", got.CallerName == want.CallerName, got.CallerName, want.CallerName)
	field("Operation", got.Operation == want.Operation, got.Operation, want.Operation)
	field("TargetID", got.TargetID == want.TargetID, got.TargetID, want.TargetID)
	field("TargetName", got.TargetName == want.TargetName, got.TargetName, want.TargetName)
	field("Fields", slices.Equal(got.Fields, want.Fields), got.Fields, want.Fields)
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

func eventIDs(events []*storage.AuditEvent) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// listEvents follows the cursor from the first page to the last and returns
// every event in order. It checks the page-size contract on the way.
func listEvents(t *testing.T, s storage.Store, q storage.AuditQuery) []*storage.AuditEvent {
	t.Helper()
	return allPages(t, q.Limit, q.After, func(after string) ([]*storage.AuditEvent, string, error) {
		q.After = after
		page, err := s.ListAuditEvents(context.Background(), q)
		if err != nil {
			return nil, "", fmt.Errorf("ListAuditEvents(%+v): %w", q, err)
		}
		return page.Events, page.Next, nil
	})
}

// allEvents returns the whole trail, newest first.
func allEvents(t *testing.T, s storage.Store) []*storage.AuditEvent {
	t.Helper()
	return listEvents(t, s, storage.AuditQuery{Limit: 100})
}

// wantIncreasing fails t unless ids are unique and strictly increasing.
func wantIncreasing(t *testing.T, ids []string) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("event IDs not strictly increasing: %q then %q (all: %q)", ids[i-1], ids[i], ids)
		}
	}
}

func testAuditRecordedWithWrite(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Audited")
	actions := []storage.Action{{ID: "api::a.a.find", Description: "find a"}, {ID: "api::b.b.find", Description: "find b"}}
	bootstrapEvent := event(storage.AuditBootstrap, nil, 0, "Root")
	bootstrapEvent.CallerID, bootstrapEvent.CallerName = "", "" // no caller at first start
	for _, tc := range []struct {
		name  string
		ev    *storage.AuditEvent
		write func(ev *storage.AuditEvent) error
	}{
		{"Bootstrap", bootstrapEvent, func(ev *storage.AuditEvent) error {
			did, err := s.Bootstrap(ctx, []*storage.Token{newToken("Root")}, ev)
			if err == nil && !did {
				return errors.New("Bootstrap of a fresh store did nothing")
			}
			return err
		}},
		{"CreateToken", event(storage.AuditCreateToken, tok, 1), func(ev *storage.AuditEvent) error {
			return s.CreateToken(ctx, tok, ev)
		}},
		{"UpdateToken", event(storage.AuditUpdateToken, tok, 2, "description"), func(ev *storage.AuditEvent) error {
			_, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
				t.Description = "changed"
				return nil
			}, ev)
			return err
		}},
		{"RegenerateToken", event(storage.AuditRegenerateToken, tok, 3, "secret_hint"), func(ev *storage.AuditEvent) error {
			_, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
				t.PreviousSecretHash, t.PreviousExpireTime = t.SecretHash, base.Add(time.Hour)
				t.SecretHash = hashOf("regenerated")
				return nil
			}, ev)
			return err
		}},
		{"DeleteToken", event(storage.AuditDeleteToken, tok, 4), func(ev *storage.AuditEvent) error {
			return s.DeleteToken(ctx, tok.ID, nil, ev)
		}},
		{"RegisterActions", event(storage.AuditRegisterActions, nil, 5, actions[0].ID, actions[1].ID), func(ev *storage.AuditEvent) error {
			return s.RegisterActions(ctx, actions, AnyCatalog, ev)
		}},
		// A successful call is recorded even when the catalog already
		// held the actions as given.
		{"RegisterActionsAgain", event(storage.AuditRegisterActions, nil, 6, actions[0].ID), func(ev *storage.AuditEvent) error {
			return s.RegisterActions(ctx, actions[:1], AnyCatalog, ev)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := allEvents(t, s)
			want := cloneEvent(tc.ev)
			if err := tc.write(tc.ev); err != nil {
				t.Fatal(err)
			}
			if tc.ev.ID == "" {
				t.Fatal("the write succeeded but left the event without an ID")
			}
			want.ID = tc.ev.ID
			if d := diffEvent(tc.ev, want); d != "" {
				t.Fatalf("the store changed more of the caller's event than its ID: %s", d)
			}
			// The store keeps its own copy.
			tc.ev.TargetName = "changed after the write"
			after := allEvents(t, s)
			if len(after) != len(before)+1 {
				t.Fatalf("%d events after the write, want %d", len(after), len(before)+1)
			}
			if d := diffEvent(after[0], want); d != "" {
				t.Fatalf("newest event: %s", d)
			}
			if len(before) > 0 && after[0].ID <= before[0].ID {
				t.Fatalf("new event ID %q is not after the previous newest %q", after[0].ID, before[0].ID)
			}
		})
	}

	t.Run("NoEventWithoutOne", func(t *testing.T) {
		before := allEvents(t, s)
		quiet := newToken("Quiet")
		create(t, s, quiet)
		if _, err := s.UpdateToken(ctx, quiet.ID, func(t *storage.Token) error { t.Description = "x"; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchLastUsed(ctx, map[string]time.Time{quiet.ID: base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteToken(ctx, quiet.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.RegisterActions(ctx, actions, AnyCatalog, nil); err != nil {
			t.Fatal(err)
		}
		if after := allEvents(t, s); !slices.Equal(eventIDs(after), eventIDs(before)) {
			t.Fatalf("writes without an event changed the trail from %q to %q", eventIDs(before), eventIDs(after))
		}
	})
}

func testAuditAbsentWhenWriteFails(t *testing.T, s storage.Store) {
	ctx := context.Background()
	foo, bar := newToken("Foo"), newToken("Bar")
	create(t, s, foo, bar)
	errRefused := errors.New("refused by modify")
	for _, tc := range []struct {
		name  string
		write func(ev *storage.AuditEvent) error
		want  error // nil: the write must succeed without storing anything
	}{
		{"CreateDuplicateName", func(ev *storage.AuditEvent) error {
			tok := newToken("Other")
			tok.Name = "FOO"
			return s.CreateToken(ctx, tok, ev)
		}, storage.ErrNameTaken},
		{"CreateDuplicateID", func(ev *storage.AuditEvent) error {
			tok := newToken("Other")
			tok.ID = foo.ID
			return s.CreateToken(ctx, tok, ev)
		}, storage.ErrIDTaken},
		{"CreateDuplicateHash", func(ev *storage.AuditEvent) error {
			tok := newToken("Other")
			tok.SecretHash = slices.Clone(foo.SecretHash)
			return s.CreateToken(ctx, tok, ev)
		}, storage.ErrHashTaken},
		{"UpdateNotFound", func(ev *storage.AuditEvent) error {
			_, err := s.UpdateToken(ctx, "missing", func(*storage.Token) error { return nil }, ev)
			return err
		}, storage.ErrNotFound},
		{"UpdateModifyError", func(ev *storage.AuditEvent) error {
			_, err := s.UpdateToken(ctx, foo.ID, func(t *storage.Token) error {
				t.Description = "changed"
				ev.TargetName = t.Name
				return errRefused
			}, ev)
			return err
		}, errRefused},
		{"UpdateNameTaken", func(ev *storage.AuditEvent) error {
			_, err := s.UpdateToken(ctx, bar.ID, func(t *storage.Token) error { t.Name = "foo"; return nil }, ev)
			return err
		}, storage.ErrNameTaken},
		{"UpdateHashTaken", func(ev *storage.AuditEvent) error {
			_, err := s.UpdateToken(ctx, bar.ID, func(t *storage.Token) error {
				t.PreviousSecretHash, t.SecretHash = t.SecretHash, slices.Clone(foo.SecretHash)
				return nil
			}, ev)
			return err
		}, storage.ErrHashTaken},
		{"DeleteNotFound", func(ev *storage.AuditEvent) error {
			return s.DeleteToken(ctx, "missing", nil, ev)
		}, storage.ErrNotFound},
		{"BootstrapConflict", func(ev *storage.AuditEvent) error {
			a, b := newToken("Same"), newToken("Other")
			b.Name = "SAME"
			_, err := s.Bootstrap(ctx, []*storage.Token{a, b}, ev)
			return err
		}, storage.ErrNameTaken},
		{"BootstrapAlreadyDone", func(ev *storage.AuditEvent) error {
			if did, err := s.Bootstrap(ctx, nil, nil); err != nil || !did {
				return fmt.Errorf("first Bootstrap = %v, %v; want true, nil", did, err)
			}
			did, err := s.Bootstrap(ctx, []*storage.Token{newToken("Late")}, ev)
			if err == nil && did {
				return errors.New("second Bootstrap bootstrapped")
			}
			return err
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := allEvents(t, s)
			ev := event(storage.AuditUpdateToken, foo, 1, "description")
			if err := tc.write(ev); !errors.Is(err, tc.want) {
				t.Fatalf("write = %v, want %v", err, tc.want)
			}
			if ev.ID != "" {
				t.Fatalf("nothing was recorded, yet the event was given the ID %q", ev.ID)
			}
			if after := allEvents(t, s); !slices.Equal(eventIDs(after), eventIDs(before)) {
				t.Fatalf("the trail changed from %q to %q", eventIDs(before), eventIDs(after))
			}
			wantStored(t, s, foo)
			wantStored(t, s, bar)
		})
	}
}

func testAuditModifyFillsEvent(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tok := newToken("Before")
	create(t, s, tok)
	// The caller knows only the id; modify fills in the rest, as a
	// service does once it sees the token.
	ev := &storage.AuditEvent{Time: base, CallerID: "id-Admin", Operation: storage.AuditUpdateToken, TargetID: tok.ID}
	calls := 0
	_, err := s.UpdateToken(ctx, tok.ID, func(t *storage.Token) error {
		calls++
		t.Name = "After"
		ev.TargetName, ev.Fields = t.Name, []string{"name"}
		return nil
	}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Fatal("modify was not called")
	}
	want := &storage.AuditEvent{
		ID: ev.ID, Time: base, CallerID: "id-Admin", Operation: storage.AuditUpdateToken,
		TargetID: tok.ID, TargetName: "After", Fields: []string{"name"},
	}
	events := allEvents(t, s)
	if len(events) != 1 {
		t.Fatalf("%d events, want 1", len(events))
	}
	if d := diffEvent(events[0], want); d != "" {
		t.Fatalf("recorded %s", d)
	}
}

func testAuditIDsFollowCommitOrder(t *testing.T, s storage.Store) {
	ctx := context.Background()
	t.Run("Sequential", func(t *testing.T) {
		var ids []string
		for i := range 12 {
			tok := newToken(fmt.Sprintf("sequential %02d", i))
			ev := event(storage.AuditCreateToken, tok, i)
			if err := s.CreateToken(ctx, tok, ev); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.ID)
			if i%3 == 0 {
				ev := event(storage.AuditDeleteToken, tok, i)
				if err := s.DeleteToken(ctx, tok.ID, nil, ev); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ev.ID)
			}
		}
		wantIncreasing(t, ids)
		listed := eventIDs(allEvents(t, s))
		slices.Reverse(listed)
		if !slices.Equal(listed, ids) {
			t.Fatalf("listed (oldest first) %q, want %q", listed, ids)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		// The change feed delivers changes in commit order; the events'
		// IDs must sort the same way.
		r := subscribe(t, s)
		seen := r.len()
		const n = 20
		events := make([]*storage.AuditEvent, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				tok := newToken(fmt.Sprintf("concurrent %02d", i))
				events[i] = event(storage.AuditCreateToken, tok, i)
				<-start
				if err := s.CreateToken(ctx, tok, events[i]); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		var committed []string
		for _, c := range r.since(seen) {
			committed = append(committed, c.ID)
		}
		slices.SortFunc(events, func(a, b *storage.AuditEvent) int {
			switch {
			case a.ID < b.ID:
				return -1
			case a.ID > b.ID:
				return 1
			}
			return 0
		})
		var byID []string
		for _, ev := range events {
			byID = append(byID, ev.TargetID)
		}
		wantIncreasing(t, eventIDs(events))
		if !slices.Equal(byID, committed) {
			t.Fatalf("events in ID order are about %q, but the tokens were committed in the order %q", byID, committed)
		}
	})
}

// auditTrail records n events, alternating between the targets (one of
// them "" for no target), and returns them oldest first.
func auditTrail(t *testing.T, s storage.Store, n int, targets ...*storage.Token) []*storage.AuditEvent {
	t.Helper()
	ctx := context.Background()
	var events []*storage.AuditEvent
	for i := range n {
		target := targets[i%len(targets)]
		ev := event(storage.AuditUpdateToken, target, i, fmt.Sprintf("field %d", i))
		var err error
		if target == nil {
			ev.Operation = storage.AuditRegisterActions
			err = s.RegisterActions(ctx, []storage.Action{{ID: fmt.Sprintf("api::x.x%d.find", i)}}, AnyCatalog, ev)
		} else {
			_, err = s.UpdateToken(ctx, target.ID, func(t *storage.Token) error {
				t.Description = fmt.Sprintf("change %d", i)
				return nil
			}, ev)
		}
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		events = append(events, ev)
	}
	return events
}

// newestFirst returns the IDs of the events, filtered by target unless it
// is "", newest first, given them oldest first.
func newestFirst(events []*storage.AuditEvent, target string) []string {
	var ids []string
	for _, ev := range slices.Backward(events) {
		if target == "" || ev.TargetID == target {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

func testAuditListPagination(t *testing.T, s storage.Store) {
	ctx := context.Background()
	a, b := newToken("A"), newToken("B")
	create(t, s, a, b)
	events := auditTrail(t, s, 10, a, b, nil)
	want := newestFirst(events, "")
	for _, limit := range []int{1, 3, 5, 10, 100} {
		t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
			got := listEvents(t, s, storage.AuditQuery{Limit: limit})
			if !slices.Equal(eventIDs(got), want) {
				t.Fatalf("listed %q\nwant %q", eventIDs(got), want)
			}
			for i, ev := range got {
				if d := diffEvent(ev, events[len(events)-1-i]); d != "" {
					t.Fatalf("event %d: %s", i, d)
				}
			}
		})
	}
	t.Run("StableAcrossWrites", func(t *testing.T) {
		first, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if got := eventIDs(first.Events); !slices.Equal(got, want[:4]) {
			t.Fatalf("first page %q, want %q", got, want[:4])
		}
		// Newer events do not shift the pages that follow.
		auditTrail(t, s, 3, a)
		rest := listEvents(t, s, storage.AuditQuery{Limit: 4, After: first.Next})
		if got := eventIDs(rest); !slices.Equal(got, want[4:]) {
			t.Fatalf("after new events the next pages list %q, want %q", got, want[4:])
		}
	})
	t.Run("CallerOwnsEvents", func(t *testing.T) {
		page, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := cloneEvent(page.Events[0])
		page.Events[0].Fields[0], page.Events[0].TargetName = "changed", "changed"
		again, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if d := diffEvent(again.Events[0], want); d != "" {
			t.Fatalf("changing a listed event reached the store: %s", d)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		page, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: 10, TargetID: "no such token"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != 0 || page.Next != "" {
			t.Fatalf("listing for an unknown target = %q, next %q; want nothing", eventIDs(page.Events), page.Next)
		}
	})
}

func testAuditTargetFilter(t *testing.T, s storage.Store) {
	ctx := context.Background()
	a, ab := newToken("A"), newToken("AB")
	// Ids that extend another one, with and without a NUL, must not leak
	// into its listing.
	nul := newToken("A with NUL")
	nul.ID = a.ID + "\x00B"
	create(t, s, a, ab, nul)
	events := auditTrail(t, s, 17, a, ab, nil, nul, a)
	// A deleted token's events stay listable, its delete included.
	del := event(storage.AuditDeleteToken, ab, 100)
	if err := s.DeleteToken(ctx, ab.ID, nil, del); err != nil {
		t.Fatal(err)
	}
	events = append(events, del)
	for _, target := range []*storage.Token{a, ab, nul} {
		want := newestFirst(events, target.ID)
		if len(want) < 3 {
			t.Fatalf("only %d events about %q", len(want), target.ID)
		}
		for _, limit := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%s/Limit%d", target.Name, limit), func(t *testing.T) {
				got := listEvents(t, s, storage.AuditQuery{Limit: limit, TargetID: target.ID})
				if !slices.Equal(eventIDs(got), want) {
					t.Fatalf("listed %q\nwant %q", eventIDs(got), want)
				}
				for _, ev := range got {
					if ev.TargetID != target.ID {
						t.Fatalf("event %s is about %q", ev.ID, ev.TargetID)
					}
				}
			})
		}
	}
}

func testAuditBadCursor(t *testing.T, s storage.Store) {
	ctx := context.Background()
	a := newToken("A")
	create(t, s, a)
	auditTrail(t, s, 5, a)
	create(t, s, newToken("B"))
	tokens, err := s.ListTokens(ctx, storage.ListQuery{Limit: 1})
	if err != nil || tokens.Next == "" {
		t.Fatalf("ListTokens = %v, %v; want a page with a cursor", tokens, err)
	}
	for _, tc := range []struct {
		name  string
		after string
	}{
		{"NotBase64", "!!not a cursor!!"},
		{"Garbage", "AAAA"},
		{"TokenListingCursor", tokens.Next},
	} {
		for _, f := range []struct{ name, target string }{{"AllTargets", ""}, {"OneTarget", a.ID}} {
			target := f.target
			t.Run(tc.name+"/"+f.name, func(t *testing.T) {
				_, err := s.ListAuditEvents(ctx, storage.AuditQuery{After: tc.after, Limit: 2, TargetID: target})
				if !errors.Is(err, storage.ErrBadCursor) {
					t.Fatalf("ListAuditEvents = %v, want ErrBadCursor", err)
				}
			})
		}
	}
	t.Run("LimitNotPositive", func(t *testing.T) {
		for _, limit := range []int{0, -1} {
			if _, err := s.ListAuditEvents(ctx, storage.AuditQuery{Limit: limit}); err == nil {
				t.Errorf("ListAuditEvents with limit %d succeeded, want an error", limit)
			}
		}
	})
}

func testAuditPrune(t *testing.T, s storage.Store) {
	ctx := context.Background()
	a, b := newToken("A"), newToken("B")
	create(t, s, a, b)
	// Event i is at base + i s; the last one is committed last but carries
	// an early time, as a slow caller's clock can: pruning goes by Time.
	events := auditTrail(t, s, 8, a, b, nil)
	late := event(storage.AuditUpdateToken, a, -10)
	if _, err := s.UpdateToken(ctx, a.ID, func(*storage.Token) error { return nil }, late); err != nil {
		t.Fatal(err)
	}
	events = append(events, late)
	maxID := late.ID

	cutoff := base.Add(3 * time.Second) // events 0, 1, 2 and late are older
	var kept []*storage.AuditEvent
	for _, ev := range events {
		if !ev.Time.Before(cutoff) {
			kept = append(kept, ev)
		}
	}
	for _, tc := range []struct {
		name   string
		before time.Time
		want   int
	}{
		{"ZeroTime", time.Time{}, 0},
		{"BeforeEverything", base.Add(-time.Hour), 0},
		{"OlderOnly", cutoff, len(events) - len(kept)},
		{"Again", cutoff, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.PruneAuditEvents(ctx, tc.before)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Fatalf("PruneAuditEvents = %d, want %d", n, tc.want)
			}
		})
	}
	t.Run("KeptEvents", func(t *testing.T) {
		for _, target := range []string{"", a.ID, b.ID} {
			for _, limit := range []int{1, 100} {
				got := listEvents(t, s, storage.AuditQuery{Limit: limit, TargetID: target})
				if want := newestFirst(kept, target); !slices.Equal(eventIDs(got), want) {
					t.Fatalf("target %q, limit %d: listed %q, want %q", target, limit, eventIDs(got), want)
				}
			}
		}
	})
	t.Run("IDsNotReused", func(t *testing.T) {
		if n, err := s.PruneAuditEvents(ctx, base.Add(time.Hour)); err != nil || n != len(kept) {
			t.Fatalf("pruning everything = %d, %v; want %d, nil", n, err, len(kept))
		}
		if got := allEvents(t, s); len(got) != 0 {
			t.Fatalf("events left after pruning everything: %q", eventIDs(got))
		}
		ev := event(storage.AuditDeleteToken, b, 0)
		if err := s.DeleteToken(ctx, b.ID, nil, ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID <= maxID {
			t.Fatalf("event recorded after pruning got ID %q, not after the pruned %q", ev.ID, maxID)
		}
		got := listEvents(t, s, storage.AuditQuery{Limit: 10, TargetID: b.ID})
		if !slices.Equal(eventIDs(got), []string{ev.ID}) {
			t.Fatalf("events about %q: %q, want only %q", b.ID, eventIDs(got), ev.ID)
		}
	})
}
