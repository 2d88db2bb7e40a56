package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
)

func newTokenCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list, edit, regenerate, delete and check tokens",
		Long: `Manage API tokens (checked by backends) and admin tokens (credentials for
tokend itself). Every command that takes a token accepts its id or its name
(names are compared case-insensitively).`,
		Example: `  tokend token create "Website" --type read-only --lifespan 7d
  tokend token list
  tokend token get website
  tokend token delete website --yes`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE(a),
	}
	a.addClientFlags(cmd)
	cmd.AddCommand(
		newTokenCreateCmd(a),
		newTokenListCmd(a),
		newTokenGetCmd(a),
		newTokenUpdateCmd(a),
		newTokenRegenerateCmd(a),
		newTokenDeleteCmd(a),
		newTokenIntrospectCmd(a),
	)
	return cmd
}

// tokenFields are the flags that set a token's editable fields.
type tokenFields struct {
	name, description string
	typ               string
	permissions       []string
	lifespan          string
}

func (f *tokenFields) add(cmd *cobra.Command, withName bool) {
	fs := cmd.Flags()
	if withName {
		fs.StringVar(&f.name, "name", "", "new name: 1-100 characters, unique (case-insensitively)")
	}
	fs.StringVar(&f.description, "description", "", "what the token is for (at most 1000 characters)")
	fs.StringVar(&f.typ, "type", "", "read-only (actions whose verb is find or findOne), full-access, or custom (exactly the --permission actions)")
	fs.StringArrayVar(&f.permissions, "permission", nil, "an action a custom token allows (repeat the flag); implies --type custom")
	fs.StringVar(&f.lifespan, "lifespan", "", "how long the secret works: one of the server's presets (by default 7d, 30d or 90d) or unlimited")
	_ = cmd.RegisterFlagCompletionFunc("type", fixedCompletions("read-only", "full-access", "custom"))
	_ = cmd.RegisterFlagCompletionFunc("lifespan", fixedCompletions("7d", "30d", "90d", "unlimited"))
}

// apply copies the flags given on the command line into t and returns the
// update-mask paths they set.
func (f *tokenFields) apply(cmd *cobra.Command, t *tokendv1.Token) ([]string, error) {
	changed := cmd.Flags().Changed
	var paths []string
	if changed("name") {
		t.Name, paths = f.name, append(paths, "name")
	}
	if changed("description") {
		t.Description, paths = f.description, append(paths, "description")
	}
	if changed("type") {
		typ, err := parseType(f.typ)
		if err != nil {
			return nil, err
		}
		t.Type, paths = typ, append(paths, "type")
	}
	if changed("permission") {
		switch {
		case !changed("type"):
			t.Type, paths = tokendv1.TokenType_TOKEN_TYPE_CUSTOM, append(paths, "type")
		case t.Type != tokendv1.TokenType_TOKEN_TYPE_CUSTOM:
			return nil, usageErrorf("--permission: only custom tokens take permissions, not --type %s", f.typ)
		}
		t.Permissions, paths = f.permissions, append(paths, "permissions")
	}
	if changed("lifespan") {
		d, err := parseDays("--lifespan", f.lifespan, true)
		if err != nil {
			return nil, err
		}
		t.Lifespan = nil
		if d > 0 {
			t.Lifespan = durationpb.New(d)
		}
		paths = append(paths, "lifespan")
	}
	return paths, nil
}

var tokenTypes = map[string]tokendv1.TokenType{
	"read-only":   tokendv1.TokenType_TOKEN_TYPE_READ_ONLY,
	"full-access": tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS,
	"custom":      tokendv1.TokenType_TOKEN_TYPE_CUSTOM,
}

func parseType(s string) (tokendv1.TokenType, error) {
	if t, ok := tokenTypes[strings.ToLower(s)]; ok {
		return t, nil
	}
	return 0, usageErrorf("--type %q: want read-only, full-access or custom", s)
}

func typeName(t tokendv1.TokenType) string {
	for name, v := range tokenTypes {
		if v == t {
			return name
		}
	}
	return t.String()
}

func kindName(k tokendv1.TokenKind) string {
	if k == tokendv1.TokenKind_TOKEN_KIND_ADMIN {
		return "admin"
	}
	return "api"
}

// parseDays reads a duration as whole days ("7d") or a Go duration ("12h");
// "unlimited" (when allowed) is 0. Whether the server offers it is the
// server's to say: its presets are configurable, and it answers with the
// list when a value is not one of them.
func parseDays(flag, s string, unlimited bool) (time.Duration, error) {
	const day = 24 * time.Hour
	if unlimited && strings.EqualFold(s, "unlimited") {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 && days <= 100*365 {
			return time.Duration(days) * day, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	want := "a number of days such as 7d, 30d or 90d, or a duration such as 12h"
	if unlimited {
		want += ", or unlimited"
	}
	return 0, usageErrorf("%s %q: want %s", flag, s, want)
}

// secretResponse is an answer that carries a new secret.
type secretResponse interface {
	proto.Message
	GetToken() *tokendv1.Token
	GetSecret() string
}

// issueSecret makes the call that returns a new secret and delivers the
// secret exactly once: into the file at secretPath, prepared before the call
// so that a path that cannot be written fails before the secret exists; or
// else on stdout on a line of its own, with a warning on stderr that it will
// not be shown again. With -o json the answer is printed, without the secret
// when it went to the file.
func (a *app) issueSecret(verb, secretPath string, call func() (secretResponse, error)) error {
	var sf *secretFile
	if secretPath != "" {
		var err error
		if sf, err = prepareSecretFile(secretPath); err != nil {
			return err
		}
		defer sf.discard()
	}
	resp, err := call()
	if err != nil {
		return err
	}
	tok := resp.GetToken()
	if sf != nil {
		if err := sf.write(resp.GetSecret()); err != nil {
			return err
		}
		r := resp.ProtoReflect()
		r.Clear(r.Descriptor().Fields().ByName("secret"))
		fmt.Fprintf(a.stderr, "%s token %q (id %s); its secret is in %s (mode 0600).\n", verb, tok.GetName(), tok.GetId(), sf.path)
	} else {
		fmt.Fprintf(a.stderr, "%s token %q (id %s). Copy its secret now: it will not be shown again.\n", verb, tok.GetName(), tok.GetId())
		if a.output == "table" {
			_, err := fmt.Fprintln(a.stdout, resp.GetSecret())
			return err
		}
	}
	if a.output == "json" {
		return a.printJSON(resp)
	}
	return nil
}

func newTokenCreateCmd(a *app) *cobra.Command {
	var (
		f          tokenFields
		admin      bool
		secretPath string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a token and show its secret, once",
		Long: `Create a token. Its secret is printed once, alone on stdout (so that
SECRET=$(tokend token create …) captures it), with a warning on stderr; with
--secret-file it is written to that file (mode 0600) instead. tokend keeps only
a hash of it: it cannot be shown again, only regenerated.

The token is read-only and unlimited unless --type and --lifespan say
otherwise; --permission implies --type custom. --admin creates an admin token
(a credential for tokend itself, whose permissions are tokend.* actions).`,
		Example: `  tokend token create "Website" --description "Public site" --lifespan 7d
  tokend token create "Editor bot" --permission api::article.article.find \
    --permission api::article.article.create --lifespan 90d --secret-file editor.token
  tokend token create "Auditor" --admin --permission tokend.token.find -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok := &tokendv1.Token{Name: args[0]}
			if _, err := f.apply(cmd, tok); err != nil {
				return err
			}
			if admin {
				tok.Kind = tokendv1.TokenKind_TOKEN_KIND_ADMIN
			}
			c, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return a.issueSecret("Created", secretPath, func() (secretResponse, error) {
				return c.API().CreateToken(cmd.Context(), &tokendv1.CreateTokenRequest{Token: tok})
			})
		},
	}
	f.add(cmd, false)
	cmd.Flags().BoolVar(&admin, "admin", false, "create an admin token (a credential for tokend) instead of an API token")
	cmd.Flags().StringVar(&secretPath, "secret-file", "", "write the secret to this file (mode 0600, replaced if it exists) instead of printing it")
	return cmd
}

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

// resolveToken finds a token by id or, failing that, by name (compared as
// the server compares names for uniqueness).
func resolveToken(ctx context.Context, c *client.Client, ref string) (*tokendv1.Token, error) {
	resp, err := c.API().GetToken(ctx, &tokendv1.GetTokenRequest{Id: ref})
	if err == nil {
		return resp.GetToken(), nil
	}
	if code := status.Code(err); code != codes.NotFound && code != codes.InvalidArgument {
		return nil, err
	}
	key := storage.NameKey(strings.TrimSpace(ref))
	var found *tokendv1.Token
	_, err = collect(ctx, 0, func(ctx context.Context, size int32, page string) ([]*tokendv1.Token, string, error) {
		resp, err := c.API().ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: size, PageToken: page})
		for _, t := range resp.GetTokens() {
			if storage.NameKey(t.GetName()) == key {
				found = t
				return nil, "", nil
			}
		}
		return nil, resp.GetNextPageToken(), err
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("no token has the id or name %q", ref)
	}
	return found, nil
}

// dialFor connects as dial does and finds the token ref names (id or name).
func (a *app) dialFor(cmd *cobra.Command, ref string) (*client.Client, *tokendv1.Token, error) {
	c, err := a.dial(cmd)
	if err != nil {
		return nil, nil, err
	}
	t, err := resolveToken(cmd.Context(), c, ref)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, t, nil
}

// completeTokenNames completes a token argument with the names of the
// tokens on the server, when it can be reached with the admin token.
func (a *app) completeTokenNames(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.dial(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a shell waits on it
	defer cancel()
	tokens, err := collect(ctx, 0, func(ctx context.Context, size int32, page string) ([]*tokendv1.Token, string, error) {
		resp, err := c.API().ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: size, PageToken: page})
		return resp.GetTokens(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var names []cobra.Completion
	for _, t := range tokens {
		if strings.HasPrefix(storage.NameKey(t.GetName()), storage.NameKey(toComplete)) {
			names = append(names, t.GetName())
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// printToken shows one token: field by field, or as JSON (resp).
func (a *app) printToken(t *tokendv1.Token, resp proto.Message) error {
	if a.output == "json" {
		return a.printJSON(resp)
	}
	now := a.now()
	w := a.table()
	row(w, "ID:", t.GetId())
	row(w, "Name:", t.GetName())
	row(w, "Description:", t.GetDescription())
	row(w, "Kind:", kindName(t.GetKind()))
	row(w, "Type:", typeName(t.GetType()))
	if len(t.GetPermissions()) > 0 {
		row(w, "Permissions:", strings.Join(t.GetPermissions(), ", "))
	}
	row(w, "Lifespan:", days(t.GetLifespan().AsDuration()))
	row(w, "Expires:", when(t.GetExpireTime(), now, "never"))
	if t.GetPreviousSecretExpireTime() != nil {
		row(w, "Previous secret expires:", when(t.GetPreviousSecretExpireTime(), now, "-"))
	}
	row(w, "Last used:", when(t.GetLastUsedTime(), now, "never"))
	row(w, "Created:", when(t.GetCreateTime(), now, "-"))
	row(w, "Updated:", when(t.GetUpdateTime(), now, "-"))
	row(w, "Secret hint:", t.GetSecretHint())
	return w.Flush()
}

func newTokenGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID|NAME",
		ValidArgsFunction: a.completeTokenNames,
		Short:             "Show a token",
		Long: `Show a token's fields: type, permissions, lifespan, expiry, last use and the
hint of its secret (enough to recognise it, never to use it).`,
		Example: `  tokend token get website
  tokend token get 3k2j6v7q4m5n6p7r8s9t0u1v2w -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, t, err := a.dialFor(cmd, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			return a.printToken(t, &tokendv1.GetTokenResponse{Token: t})
		},
	}
}

func newTokenUpdateCmd(a *app) *cobra.Command {
	var f tokenFields
	cmd := &cobra.Command{
		Use:               "update ID|NAME",
		ValidArgsFunction: a.completeTokenNames,
		Short:             "Change a token's name, description, type, permissions or lifespan",
		Long: `Change the fields given as flags; the others stay as they are. A new
--lifespan restarts the clock: the token expires that long from now. Changing
--type to read-only or full-access drops the permissions. The secret does not
change (see "tokend token regenerate").`,
		Example: `  tokend token update website --description "Public site and RSS"
  tokend token update "editor bot" --permission api::article.article.find --lifespan 30d
  tokend token update website --name "Web site" --lifespan unlimited`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok := &tokendv1.Token{}
			paths, err := f.apply(cmd, tok)
			if err != nil {
				return err
			}
			if len(paths) == 0 {
				return usageErrorf("nothing to change: give --name, --description, --type, --permission or --lifespan")
			}
			c, t, err := a.dialFor(cmd, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			tok.Id = t.GetId()
			resp, err := c.API().UpdateToken(cmd.Context(), &tokendv1.UpdateTokenRequest{Token: tok, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			if err != nil {
				return err
			}
			return a.printToken(resp.GetToken(), resp)
		},
	}
	f.add(cmd, true)
	return cmd
}

// maxGrace is the longest grace period the server allows a rotation.
const maxGrace = 24 * time.Hour

func newTokenRegenerateCmd(a *app) *cobra.Command {
	var (
		grace      time.Duration
		secretPath string
	)
	cmd := &cobra.Command{
		Use:               "regenerate ID|NAME",
		ValidArgsFunction: a.completeTokenNames,
		Short:             "Give a token a new secret, shown once",
		Long: `Give a token a new secret: same id, same permissions, and the lifespan clock
restarts from now. The old secret stops working at once, or after --grace (at
most 24h) so that its users can switch without downtime. The new secret is
shown as by "tokend token create".`,
		Example: `  tokend token regenerate website
  tokend token regenerate "editor bot" --grace 1h --secret-file editor.token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 || grace > maxGrace {
				return usageErrorf("--grace %v: want a duration from 0 to 24h", grace)
			}
			c, t, err := a.dialFor(cmd, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			return a.issueSecret("Regenerated", secretPath, func() (secretResponse, error) {
				req := &tokendv1.RegenerateTokenRequest{Id: t.GetId()}
				if grace > 0 {
					req.GracePeriod = durationpb.New(grace)
				}
				return c.API().RegenerateToken(cmd.Context(), req)
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "how long the old secret keeps working beside the new one (at most 24h)")
	cmd.Flags().StringVar(&secretPath, "secret-file", "", "write the secret to this file (mode 0600, replaced if it exists) instead of printing it")
	return cmd
}

// isTerminal reports whether r is an interactive terminal.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newTokenDeleteCmd(a *app) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:               "delete ID|NAME",
		ValidArgsFunction: a.completeTokenNames,
		Short:             "Delete a token; its secret stops working at once",
		Long: `Delete a token: its secret stops working at once and it cannot be undone.
On a terminal, tokend asks for confirmation; elsewhere (scripts) --yes is
required.`,
		Example: `  tokend token delete website
  tokend token delete 3k2j6v7q4m5n6p7r8s9t0u1v2w --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			interactive := isTerminal(a.stdin)
			if !yes && !interactive {
				return usageErrorf("not on a terminal: pass --yes to delete without confirmation")
			}
			c, t, err := a.dialFor(cmd, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			if !yes {
				fmt.Fprintf(a.stderr, "Delete %s token %q (id %s)? Its secret stops working at once. [y/N] ", kindName(t.GetKind()), t.GetName(), t.GetId())
				answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if ans := strings.ToLower(strings.TrimSpace(answer)); ans != "y" && ans != "yes" {
					return fmt.Errorf("not deleted")
				}
			}
			resp, err := c.API().DeleteToken(cmd.Context(), &tokendv1.DeleteTokenRequest{Id: t.GetId()})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Deleted token %q (id %s).\n", t.GetName(), t.GetId())
			if a.output == "json" {
				return a.printJSON(resp)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

func newTokenIntrospectCmd(a *app) *cobra.Command {
	var actions []string
	cmd := &cobra.Command{
		Use:   "introspect",
		Short: "Check a secret as a backend would; exit 0 only if active and allowed",
		Long: `Read a token's secret from stdin (its first line) and ask tokend whether it is
active and allowed every --action. The exit status answers: 0 when the token is
active and allowed, 1 otherwise (unknown, expired, malformed, or an action
denied), so a shell script can gate on it. The secret is never an argument.`,
		Example: `  tokend token introspect --action api::article.article.find < website.token
  printf '%s\n' "$SECRET" | tokend token introspect -o json
  if tokend token introspect --action api::article.article.create < bot.token; then echo ok; fi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			secret, err := a.readSecret()
			if err != nil {
				return err
			}
			resp, err := c.Introspect(cmd.Context(), secret, actions...)
			if err != nil {
				return err
			}
			if a.output == "json" {
				if err := a.printJSON(resp); err != nil {
					return err
				}
			} else if err := a.printIntrospection(resp); err != nil {
				return err
			}
			if !resp.GetActive() || !resp.GetAllowed() {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&actions, "action", nil, "an action the token must be allowed (repeat the flag)")
	return cmd
}

// readSecret reads the first line of stdin; on a terminal it asks for it
// and does not echo it.
func (a *app) readSecret() (string, error) {
	var line string
	if f, ok := a.stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(a.stderr, "Secret: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("read the secret: %w", err)
		}
		line = string(b)
	} else {
		l, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && l == "" {
			return "", usageErrorf("no secret on stdin: pipe it in, e.g. tokend token introspect < file")
		}
		line = l
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", usageErrorf("no secret on stdin: pipe it in, e.g. tokend token introspect < file")
	}
	return line, nil
}

func (a *app) printIntrospection(r *tokendv1.IntrospectTokenResponse) error {
	w := a.table()
	if !r.GetActive() {
		reason := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.GetInactiveReason().String(), "INACTIVE_REASON_"), "_", " "))
		row(w, "Active:", "no ("+reason+")")
		return w.Flush()
	}
	t := r.GetToken()
	row(w, "Active:", "yes")
	row(w, "Token:", fmt.Sprintf("%s (id %s, %s)", t.GetName(), t.GetId(), typeName(t.GetType())))
	row(w, "Expires:", when(t.GetExpireTime(), a.now(), "never"))
	allowed := "yes"
	if !r.GetAllowed() {
		allowed = "no"
	}
	row(w, "Allowed:", allowed)
	if len(r.GetDeniedActions()) > 0 {
		row(w, "Denied:", strings.Join(r.GetDeniedActions(), ", "))
	}
	if r.GetPreviousSecret() {
		row(w, "Note:", "this is the previous secret, which stops working "+relative(t.GetPreviousSecretExpireTime(), a.now(), "soon"))
	}
	return w.Flush()
}
