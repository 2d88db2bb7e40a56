package service

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// auditEvent starts the audit record of a change made by caller (nil at
// bootstrap). The store writes it in the change's transaction.
func auditEvent(caller *entry, op storage.AuditOperation, now time.Time) *storage.AuditEvent {
	ev := &storage.AuditEvent{Time: now, Operation: op}
	if caller != nil {
		ev.CallerID, ev.CallerName = caller.meta.id, caller.meta.name
	}
	return ev
}

// ListAuditEvents implements tokendv1.TokenServiceServer.
func (s *Service) ListAuditEvents(ctx context.Context, req *tokendv1.ListAuditEventsRequest) (*tokendv1.ListAuditEventsResponse, error) {
	if _, err := s.authorize(ctx, ActionAuditFind); err != nil {
		return nil, err
	}
	var fe fieldErrors
	q := storage.AuditQuery{Limit: int(req.GetPageSize()), TargetID: req.GetTargetId()}
	checkPageSize(&fe, req.GetPageSize(), &q.Limit)
	// The target is part of the cursor's query: a page token replayed with
	// another target is refused.
	tag := "~" + hashTag([]byte(q.TargetID))
	if pt := req.GetPageToken(); pt != "" {
		cursor, ok := strings.CutSuffix(pt, tag)
		if !ok || cursor == "" {
			fe.add("page_token", "is not a page token of this listing (same target)")
		}
		q.After = cursor
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	page, err := s.store.ListAuditEvents(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, "ListAuditEvents", err)
	}
	resp := &tokendv1.ListAuditEventsResponse{AuditEvents: auditViews(page.Events)}
	if n := fitBudget(resp.AuditEvents); n < len(resp.AuditEvents) {
		// Too large: ask again for the events that fit, to get the
		// store's cursor after the last of them.
		q.Limit = n
		if page, err = s.store.ListAuditEvents(ctx, q); err != nil {
			return nil, s.toStatus(ctx, "ListAuditEvents", err)
		}
		resp.AuditEvents = auditViews(page.Events)
	}
	if page.Next != "" {
		resp.NextPageToken = page.Next + tag
	}
	return resp, nil
}

func auditViews(events []*storage.AuditEvent) []*tokendv1.AuditEvent {
	out := make([]*tokendv1.AuditEvent, len(events))
	for i, ev := range events {
		out[i] = &tokendv1.AuditEvent{
			Id:            ev.ID,
			Time:          timestamppb.New(ev.Time),
			CallerId:      ev.CallerID,
			CallerName:    ev.CallerName,
			Operation:     tokendv1.AuditOperation(ev.Operation),
			TargetId:      ev.TargetID,
			TargetName:    ev.TargetName,
			ChangedFields: ev.Fields,
		}
	}
	return out
}

// Bounds of what an audit event records, so that one change (a thousand
// actions registered at once) cannot make an event of hundreds of
// kilobytes: at most maxAuditFields values, each at most maxAuditValueLen
// bytes (the longest valid name, 100 characters of up to 4 bytes, fits). A
// cut value ends with "…", and a cut list ends with an entry saying how many
// values were left out.
const (
	maxAuditFields   = 100
	maxAuditValueLen = 4 * maxNameLen
)

// boundAudit cuts ev's values to the bounds above.
func boundAudit(ev *storage.AuditEvent) {
	ev.CallerName = truncateValue(ev.CallerName)
	ev.TargetName = truncateValue(ev.TargetName)
	if n := len(ev.Fields); n > maxAuditFields {
		ev.Fields = append(ev.Fields[:maxAuditFields-1:maxAuditFields-1], fmt.Sprintf("… and %d more (not recorded)", n-(maxAuditFields-1)))
	}
	for i, f := range ev.Fields {
		ev.Fields[i] = truncateValue(f)
	}
}

// truncateValue cuts v to at most maxAuditValueLen bytes, on a character
// boundary, marking the cut with "…".
func truncateValue(v string) string {
	if len(v) <= maxAuditValueLen {
		return v
	}
	const marker = "…"
	cut := maxAuditValueLen - len(marker)
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + marker
}

// PruneAuditEvents deletes audit events older than retention.
func (s *Service) PruneAuditEvents(ctx context.Context, retention time.Duration) (int, error) {
	return s.store.PruneAuditEvents(ctx, s.now().Add(-retention))
}
