package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit statuses of every tokend command: 0 success, 1 the operation failed
// (or, for `token introspect`, the token is not active and allowed), 2 the
// command line is wrong.
const (
	exitFailure = 1
	exitUsage   = 2
)

// app is what every command shares: the process's streams and environment,
// and the flags common to the commands that call a server.
type app struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time

	conn   connFlags
	output string // "table" or "json"
}

// exitError carries an exit status; err is printed as "tokend: <err>"
// unless it is nil (a status that speaks for itself, as introspect's 1).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a wrong command line: exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// run executes the command line args and returns the exit status; getenv
// supplies TOKEND_* variables.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-help" || args[0] == "-h") {
		args = []string{"--help"} // the Go flag spelling tokend took before its subcommands
	}
	a := &app{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	code := exitUsage // cobra's own errors (flags, arguments, unknown commands) are usage errors
	var e *exitError
	if errors.As(err, &e) {
		code = e.code
		err = e.err
	}
	if err != nil {
		fmt.Fprintln(stderr, "tokend:", a.describe(err))
		if code == exitUsage && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// newRootCmd builds the command tree. Every subcommand is one constructor
// taking the shared *app, in its own file; adding one is adding it to the
// list below.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "tokend",
		Short: "A central API-token service and its command line",
		Long: `tokend is a central API-token service: admins create, list, edit, regenerate
and delete API tokens, and backends ask it whether a token may do an action.

"tokend serve" runs the service; "tokend recover-root" and "tokend migrate" work
on the store itself (a stopped server's bbolt file; recover-root also beside
running etcd replicas). The token, action and audit commands are
clients of a running server over gRPC: they connect to --addr (TOKEND_ADDR,
default 127.0.0.1:9090) with the admin token from TOKEND_TOKEN or --token-file
(default: tokend/token in your config directory, e.g. ~/.config/tokend/token,
mode 0600). A secret is never taken as a flag, so it stays out of shell history
and process lists.

Exit status: 0 success, 1 the operation failed, 2 the command line is wrong.`,
		Example: `  tokend serve -data-dir /var/lib/tokend
  export TOKEND_TOKEN=$(cat root.token)
  tokend token create "Website" --type read-only --lifespan 7d
  tokend token list --expiring-within 7d
  tokend completion bash > /etc/bash_completion.d/tokend`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE(a),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(
		newServeCmd(a),
		newTokenCmd(a),
		newActionCmd(a),
		newAuditCmd(a),
		newRecoverRootCmd(a),
		newMigrateCmd(a),
		newCompletionCmd(a),
		newVersionCmd(a),
	)
	markFailures(root)
	return root
}

// groupRunE is the RunE of a command that only groups others: without a
// subcommand it prints its usage and fails (exit 2), as does an unknown
// subcommand.
func groupRunE(a *app) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		fmt.Fprint(a.stderr, cmd.UsageString())
		return usageErrorf("missing command")
	}
}

// markFailures makes every error a command's RunE returns exit with status
// 1 unless it already carries a status: errors cobra raises before RunE
// runs are about the command line and exit 2.
func markFailures(c *cobra.Command) {
	if runE := c.RunE; runE != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := runE(cmd, args)
			var e *exitError
			if err != nil && !errors.As(err, &e) {
				return &exitError{code: exitFailure, err: err}
			}
			return err
		}
	}
	for _, sub := range c.Commands() {
		markFailures(sub)
	}
}

// describe turns an error into one line. A gRPC status becomes its field
// violations ("token.lifespan: must be one of …"), or its message with what
// the code means for a user of the command line.
func (a *app) describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return oneLine(err.Error())
	}
	var parts []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				parts = append(parts, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	msg := st.Message()
	if len(parts) > 0 {
		msg = strings.Join(parts, "; ")
	}
	switch st.Code() {
	case codes.Unavailable:
		msg = fmt.Sprintf("cannot reach tokend at %s: %s", a.conn.addr, msg)
	case codes.Unauthenticated:
		msg = "the admin token was refused: " + msg
	case codes.PermissionDenied:
		msg = "permission denied: " + msg
	case codes.DeadlineExceeded:
		msg = fmt.Sprintf("tokend at %s did not answer in time", a.conn.addr)
	}
	return oneLine(msg)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
