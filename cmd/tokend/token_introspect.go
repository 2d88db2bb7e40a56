package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

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
