package service

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

// RegisterActions implements tokendv1.TokenServiceServer.
func (s *Service) RegisterActions(ctx context.Context, req *tokendv1.RegisterActionsRequest) (*tokendv1.RegisterActionsResponse, error) {
	caller, err := s.authorize(ctx, ActionActionRegister)
	if err != nil {
		return nil, err
	}
	in := req.GetActions()
	switch {
	case len(in) == 0:
		return nil, invalidField("actions", "must list at least one action")
	case len(in) > maxActionsPerCall:
		return nil, invalidField("actions", "at most %d actions per call (got %d)", maxActionsPerCall, len(in))
	}
	var fe fieldErrors
	seen := make(map[string]int, len(in))
	actions := make([]storage.Action, 0, len(in))
	for i, a := range in {
		field := fmt.Sprintf("actions[%d]", i)
		if msg := checkActionID(a.GetId()); msg != "" {
			fe.add(field+".id", "%s", msg)
		} else if strings.HasPrefix(a.GetId(), reservedSubjectPrefix) {
			fe.add(field+".id", "the subject prefix %q is reserved for tokend's admin actions", reservedSubjectPrefix)
		} else if j, dup := seen[a.GetId()]; dup {
			fe.add(field+".id", "repeats actions[%d]", j)
		} else {
			seen[a.GetId()] = i
		}
		description, msg := cleanDescription(a.GetDescription())
		if msg != "" {
			fe.add(field+".description", "%s", msg)
		}
		actions = append(actions, storage.Action{ID: a.GetId(), Description: description, RegisterTime: s.now().UTC()})
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	ev := auditEvent(caller, storage.AuditRegisterActions, s.now().UTC())
	for _, a := range actions {
		ev.Fields = append(ev.Fields, a.ID)
	}
	boundAudit(ev)
	if err := s.store.RegisterActions(ctx, actions, s.maxActions, ev); err != nil {
		return nil, s.toStatus(ctx, "RegisterActions", err)
	}
	resp := &tokendv1.RegisterActionsResponse{Actions: make([]*tokendv1.Action, len(actions))}
	for i, a := range actions {
		resp.Actions[i] = actionView(a)
	}
	return resp, nil
}

// ListActions implements tokendv1.TokenServiceServer. The catalog is paged
// by id: a page token is the last id of the previous page, tied to the
// catalog it was issued for.
func (s *Service) ListActions(ctx context.Context, req *tokendv1.ListActionsRequest) (*tokendv1.ListActionsResponse, error) {
	if _, err := s.authorize(ctx, ActionActionFind); err != nil {
		return nil, err
	}
	var fe fieldErrors
	kind, ok := kindFromAPI(req.GetKind())
	if !ok {
		fe.add("kind", "%s", badKind)
	}
	if kind != storage.KindAdmin {
		kind = storage.KindAPI
	}
	var limit int
	checkPageSize(&fe, req.GetPageSize(), &limit)
	tag := "~" + hashTag([]byte{byte(kind)})
	var after string
	if pt := req.GetPageToken(); pt != "" {
		enc, ok := strings.CutSuffix(pt, tag)
		last, err := base64.RawURLEncoding.DecodeString(enc)
		if !ok || enc == "" || err != nil {
			fe.add("page_token", "is not a page token of this listing (same kind)")
		}
		after = string(last)
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	catalog := AdminActions
	if kind == storage.KindAPI {
		var err error
		if catalog, err = s.store.ListActions(ctx); err != nil {
			return nil, s.toStatus(ctx, "ListActions", err)
		}
	}
	start := 0
	if after != "" {
		start = sort.Search(len(catalog), func(i int) bool { return catalog[i].ID > after })
	}
	end := min(start+limit, len(catalog))
	resp := &tokendv1.ListActionsResponse{Actions: make([]*tokendv1.Action, 0, end-start)}
	for _, a := range catalog[start:end] {
		resp.Actions = append(resp.Actions, actionView(a))
	}
	resp.Actions = resp.Actions[:fitBudget(resp.Actions)]
	if n := len(resp.Actions); start+n < len(catalog) {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(resp.Actions[n-1].GetId())) + tag
	}
	return resp, nil
}
