package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

func newActionCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "action",
		Short: "Register and list the actions tokens may be granted",
		Long: `An action is what a backend lets a token do, named <subject>.<verb> (e.g.
api::article.article.find). Backends register the actions they own; custom API
tokens may then be granted them. Read-only tokens allow the verbs find and
findOne, full-access tokens every action.`,
		Example: `  tokend action register api::article.article.find="List articles"
  tokend action list`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE(a),
	}
	a.addClientFlags(cmd)
	cmd.AddCommand(newActionRegisterCmd(a), newActionListCmd(a))
	return cmd
}

func newActionRegisterCmd(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "register ACTION[=DESCRIPTION]... | --file FILE",
		Short: "Add actions to the catalog, or update their descriptions",
		Long: `Register API actions, given as arguments (ACTION or ACTION=DESCRIPTION) or in
a JSON file in the REST request's form ({"actions": [{"id": …, "description":
…}]}; - reads stdin). Registering is idempotent: an action registered again
keeps its id and takes the new description.`,
		Example: `  tokend action register api::article.article.find="List articles" \
    api::article.article.create="Write an article"
  tokend action register --file actions.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &tokendv1.RegisterActionsRequest{}
			switch {
			case file != "" && len(args) > 0:
				return usageErrorf("give actions as arguments or with --file, not both")
			case file != "":
				if err := readActionsFile(a.stdin, file, req); err != nil {
					return err
				}
			case len(args) == 0:
				return usageErrorf("no action: give ACTION[=DESCRIPTION] arguments or --file")
			}
			for _, arg := range args {
				id, description, _ := strings.Cut(arg, "=")
				req.Actions = append(req.Actions, &tokendv1.Action{Id: id, Description: description})
			}
			c, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.API().RegisterActions(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(resp)
			}
			return a.printActions(resp.GetActions())
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "JSON `file` of actions, as the REST request's body (- for stdin)")
	return cmd
}

// readActionsFile reads a RegisterActionsRequest in JSON; unknown fields are
// refused, as the REST gateway refuses them.
func readActionsFile(stdin io.Reader, path string, req *tokendv1.RegisterActionsRequest) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("--file: %w", err)
	}
	if err := protojson.Unmarshal(data, req); err != nil {
		return usageErrorf("--file %s: want {\"actions\": [{\"id\": …, \"description\": …}]}: %v", path, err)
	}
	return nil
}

func newActionListCmd(a *app) *cobra.Command {
	var kind string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the registered API actions, or the built-in admin ones",
		Long: `List the action catalog, ordered by id: the API actions backends registered,
or with --kind admin the built-in tokend.* actions that admin tokens are
granted.`,
		Example: `  tokend action list
  tokend action list --kind admin -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k := tokendv1.TokenKind_TOKEN_KIND_API
			switch strings.ToLower(kind) {
			case "api":
			case "admin":
				k = tokendv1.TokenKind_TOKEN_KIND_ADMIN
			default:
				return usageErrorf("--kind %q: want api or admin", kind)
			}
			c, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			actions, err := collect(cmd.Context(), 0, func(ctx context.Context, size int32, page string) ([]*tokendv1.Action, string, error) {
				return pageActions(ctx, c, k, size, page)
			})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(&tokendv1.ListActionsResponse{Actions: actions})
			}
			return a.printActions(actions)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "api", "api (the registered catalog) or admin (the built-in actions)")
	_ = cmd.RegisterFlagCompletionFunc("kind", fixedCompletions("api", "admin"))
	return cmd
}

// pageActions asks for one page of an action catalog.
func pageActions(ctx context.Context, c *client.Client, kind tokendv1.TokenKind, size int32, page string) ([]*tokendv1.Action, string, error) {
	resp, err := c.API().ListActions(ctx, &tokendv1.ListActionsRequest{Kind: kind, PageSize: size, PageToken: page})
	if err != nil {
		return nil, "", err
	}
	return resp.GetActions(), resp.GetNextPageToken(), nil
}

func (a *app) printActions(actions []*tokendv1.Action) error {
	w := a.table("ACTION", "DESCRIPTION")
	for _, act := range actions {
		row(w, act.GetId(), act.GetDescription())
	}
	return w.Flush()
}
