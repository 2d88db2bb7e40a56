package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit trail of changes",
		Long: `Every change to tokens and actions is recorded, with who made it, in the
same transaction as the change. Secrets are never part of it.`,
		Example: `  tokend audit list --limit 20`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRunE(a),
	}
	a.addClientFlags(cmd)
	cmd.AddCommand(newAuditListCmd(a))
	return cmd
}

func newAuditListCmd(a *app) *cobra.Command {
	var (
		limit  int
		target string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events, newest first",
		Long: `List audit events, newest first: when, what, on which token, by which admin
token, and which fields changed. The list pages through the server until every
event (or --limit of them) is listed.`,
		Example: `  tokend audit list --limit 20
  tokend audit list --token website -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit %d: want 0 (no limit) or more", limit)
			}
			c, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			req := &tokendv1.ListAuditEventsRequest{}
			if target != "" {
				t, err := resolveToken(cmd.Context(), c, target)
				if err != nil {
					return err
				}
				req.TargetId = t.GetId()
			}
			events, err := collect(cmd.Context(), limit, func(ctx context.Context, size int32, page string) ([]*tokendv1.AuditEvent, string, error) {
				req.PageSize, req.PageToken = size, page
				resp, err := c.API().ListAuditEvents(ctx, req)
				return resp.GetAuditEvents(), resp.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(&tokendv1.ListAuditEventsResponse{AuditEvents: events})
			}
			now := a.now()
			w := a.table("TIME", "OPERATION", "TARGET", "BY", "FIELDS")
			for _, e := range events {
				op := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.GetOperation().String(), "AUDIT_OPERATION_"), "_", " "))
				by := e.GetCallerName()
				if e.GetCallerId() == "" {
					by = "(first start)"
				}
				row(w, relative(e.GetTime(), now, "-"), op, e.GetTargetName(), by, strings.Join(e.GetChangedFields(), ", "))
			}
			return w.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many events (0: all)")
	cmd.Flags().StringVar(&target, "token", "", "only events about this token (`ID|NAME`)")
	_ = cmd.RegisterFlagCompletionFunc("token", a.completeTokenNames)
	return cmd
}
