package service

import (
	"context"
	"fmt"
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
	if err := s.store.RegisterActions(ctx, actions, ev); err != nil {
		return nil, s.toStatus(ctx, "RegisterActions", err)
	}
	resp := &tokendv1.RegisterActionsResponse{Actions: make([]*tokendv1.Action, len(actions))}
	for i, a := range actions {
		resp.Actions[i] = actionView(a)
	}
	return resp, nil
}

// ListActions implements tokendv1.TokenServiceServer.
func (s *Service) ListActions(ctx context.Context, req *tokendv1.ListActionsRequest) (*tokendv1.ListActionsResponse, error) {
	if _, err := s.authorize(ctx, ActionActionFind); err != nil {
		return nil, err
	}
	kind, ok := kindFromAPI(req.GetKind())
	if !ok {
		return nil, invalidField("kind", "%s", badKind)
	}
	catalog := AdminActions
	if kind != storage.KindAdmin {
		var err error
		if catalog, err = s.store.ListActions(ctx); err != nil {
			return nil, s.toStatus(ctx, "ListActions", err)
		}
	}
	resp := &tokendv1.ListActionsResponse{Actions: make([]*tokendv1.Action, len(catalog))}
	for i, a := range catalog {
		resp.Actions[i] = actionView(a)
	}
	return resp, nil
}
