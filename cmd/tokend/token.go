package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
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
