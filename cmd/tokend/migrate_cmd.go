package main

import (
	"errors"
	"flag"

	"github.com/spf13/cobra"
)

// newMigrateCmd copies a bbolt store into etcd. Like serve, its flags are Go
// flags with TOKEND_* twins, parsed by migrate itself, which returns a
// wrong command line as a usage error.
func newMigrateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate [flags]",
		Short: "Copy a stopped bbolt store into an empty etcd prefix",
		Long: `Grow from one node to several: stop the tokend that uses the bbolt store, then
copy it (tokens with their hashes and last-use times, actions, audit events,
the bootstrap mark and the key checks) into an etcd prefix that holds nothing.
A prefix that already holds data is refused. The copy is read back and compared
with the source before migrate reports success. Then start the replicas with
-store etcd and the same -hash-key-file. "tokend migrate -help" lists its flags.`,
		Example: `  tokend migrate -data-dir /var/lib/tokend -etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379
  tokend migrate -help`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := migrate(cmd.Context(), args, a.getenv, a.stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
}
