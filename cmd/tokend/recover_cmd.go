package main

import (
	"errors"
	"flag"

	"github.com/spf13/cobra"
)

// newRecoverRootCmd mints a new owner in the store. Like serve, its flags are Go
// flags with TOKEND_* twins, parsed by recoverRoot itself, which returns a
// wrong command line as a usage error.
func newRecoverRootCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "recover-root [flags]",
		Short: "Mint a new unlimited full-access admin token when every admin secret is lost",
		Long: `When every admin credential is lost, stop the server and run recover-root on its
data directory (with the same -hash-key-file and prefixes as the server, if you
changed them). It takes the database lock, so it refuses while a server runs.
On etcd, run it beside the replicas with their store flags (-store etcd,
-etcd-endpoints, -etcd-prefix) and hash key: they accept the new token as soon
as their feed brings it. It mints a new unlimited full-access admin token named
"Root (recovered …)", records it in the audit trail as created by
"tokend recover-root", and shows its secret once: in -root-token-file (a new
file, mode 0600) or on stderr. "tokend recover-root -help" lists its flags.`,
		Example: `  tokend recover-root -data-dir /var/lib/tokend -root-token-file /root/tokend.token
  tokend recover-root -store etcd -etcd-endpoints http://10.0.0.1:2379 -hash-key-file /etc/tokend/hash.key
  tokend recover-root -help`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := recoverRoot(cmd.Context(), args, a.getenv, a.stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
}
