package service

import (
	"context"
	"strings"
	"time"

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
	resp := &tokendv1.ListAuditEventsResponse{AuditEvents: make([]*tokendv1.AuditEvent, len(page.Events))}
	for i, ev := range page.Events {
		resp.AuditEvents[i] = &tokendv1.AuditEvent{
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
	if page.Next != "" {
		resp.NextPageToken = page.Next + tag
	}
	return resp, nil
}

// PruneAuditEvents deletes audit events older than retention.
func (s *Service) PruneAuditEvents(ctx context.Context, retention time.Duration) (int, error) {
	return s.store.PruneAuditEvents(ctx, s.now().Add(-retention))
}
