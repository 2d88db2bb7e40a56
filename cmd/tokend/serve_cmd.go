package main

import (
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// newServeCmd runs the server. Its flags are Go flags with TOKEND_* twins,
// parsed by parseServeFlags: cobra hands it the arguments untouched, so
// `tokend serve -help` lists them with their environment variables.
func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the gRPC and HTTP servers",
		Long: `Run tokend: gRPC (with reflection and health) on -grpc-addr, and on -http-addr
the REST gateway, forward auth for reverse proxies (/v1/auth), /healthz,
/readyz, /metrics, /openapi.json and the web console. Every flag has a TOKEND_*
environment twin; a flag on the command line wins. "tokend serve -help" lists
them.

On first start, with an empty data directory, tokend creates the root admin
token and prints it once on stderr, or writes it (mode 0600) to
-root-token-file. SIGHUP reloads the -auth-routes file; SIGINT or SIGTERM stops
it gracefully.`,
		Example: `  tokend serve -data-dir /var/lib/tokend -root-token-file /root/tokend.token
  TOKEND_LOG_FORMAT=json tokend serve -grpc-addr 127.0.0.1:9090
  tokend serve -help`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, shutdownTimeout, store, err := parseServeFlags(args, a.getenv, a.stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Store, err = store.open(ctx, cfg.Logger); err != nil {
				return err
			}
			return serve(ctx, cfg, shutdownTimeout)
		},
	}
}
