package main

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

func newTokenListCmd(a *app) *cobra.Command {
	var (
		kind, typ, within, orderBy string
		limit                      int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens, with their type, expiry and last use",
		Long: `List tokens, by name unless --order-by says otherwise. The list pages through
the server until every token (or --limit of them) is listed. Times are shown
as people say them ("in 6 days", "never"); -o json gives the API's JSON with
exact times.`,
		Example: `  tokend token list
  tokend token list --kind admin
  tokend token list --expiring-within 7d --order-by created
  tokend token list --order-by last-used --limit 10 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &tokendv1.ListTokensRequest{}
			switch strings.ToLower(kind) {
			case "":
			case "api":
				req.Kind = tokendv1.TokenKind_TOKEN_KIND_API
			case "admin":
				req.Kind = tokendv1.TokenKind_TOKEN_KIND_ADMIN
			default:
				return usageErrorf("--kind %q: want api or admin", kind)
			}
			if typ != "" {
				t, err := parseType(typ)
				if err != nil {
					return err
				}
				req.Type = t
			}
			if within != "" {
				d, err := parseDays("--expiring-within", within, false)
				if err != nil {
					return err
				}
				req.ExpireBefore = timestamppb.New(a.now().Add(d))
			}
			byLastUse := false
			switch orderBy {
			case "name":
			case "created":
				req.OrderBy = "create_time desc"
			case "last-used":
				byLastUse = true // the server does not sort by it: fetch all, sort here
			default:
				return usageErrorf("--order-by %q: want name, created or last-used", orderBy)
			}
			if limit < 0 {
				return usageErrorf("--limit %d: want 0 (no limit) or more", limit)
			}
			c, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			fetchLimit := limit
			if byLastUse {
				fetchLimit = 0
			}
			tokens, err := collect(cmd.Context(), fetchLimit, func(ctx context.Context, size int32, page string) ([]*tokendv1.Token, string, error) {
				req.PageSize, req.PageToken = size, page
				resp, err := c.API().ListTokens(ctx, req)
				return resp.GetTokens(), resp.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			if byLastUse {
				slices.SortStableFunc(tokens, func(x, y *tokendv1.Token) int {
					return y.GetLastUsedTime().AsTime().Compare(x.GetLastUsedTime().AsTime()) // unset is 1970: last
				})
				if limit > 0 && len(tokens) > limit {
					tokens = tokens[:limit]
				}
			}
			if a.output == "json" {
				return a.printJSON(&tokendv1.ListTokensResponse{Tokens: tokens})
			}
			now := a.now()
			w := a.table("NAME", "ID", "KIND", "TYPE", "EXPIRES", "LAST USED", "CREATED")
			for _, t := range tokens {
				row(w, t.GetName(), t.GetId(), kindName(t.GetKind()), typeName(t.GetType()),
					relative(t.GetExpireTime(), now, "never"), relative(t.GetLastUsedTime(), now, "never"),
					relative(t.GetCreateTime(), now, "-"))
			}
			return w.Flush()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kind, "kind", "", "only api or admin tokens")
	fs.StringVar(&typ, "type", "", "only tokens of this type: read-only, full-access or custom")
	fs.StringVar(&within, "expiring-within", "", "only tokens expiring within this time (e.g. 7d, 12h), expired ones included")
	fs.StringVar(&orderBy, "order-by", "name", "name, created (newest first) or last-used (most recent first)")
	fs.IntVar(&limit, "limit", 0, "list at most this many tokens (0: all)")
	_ = cmd.RegisterFlagCompletionFunc("kind", fixedCompletions("api", "admin"))
	_ = cmd.RegisterFlagCompletionFunc("type", fixedCompletions("read-only", "full-access", "custom"))
	_ = cmd.RegisterFlagCompletionFunc("order-by", fixedCompletions("name", "created", "last-used"))
	return cmd
}

// maxPageSize is the largest page the server returns.
const maxPageSize = 1000

// collect calls page until the server has no more pages or limit items
// (0: no limit) are collected. page gets the page size to ask for and the
// page token ("" for the first) and returns the items and the next page
// token ("" on the last page).
func collect[T any](ctx context.Context, limit int, page func(ctx context.Context, size int32, token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for {
		size := maxPageSize
		if limit > 0 {
			size = min(size, limit-len(all))
		}
		items, next, err := page(ctx, int32(size), token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" || next == token || (limit > 0 && len(all) >= limit) {
			break
		}
		token = next
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}
