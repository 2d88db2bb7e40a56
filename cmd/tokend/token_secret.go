package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

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
