package main

import (
	"context"
	"flag"
	"io"

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
)

// recoverRoot runs `tokend recover-root`: with no server running on the
// data directory, it mints a new unlimited full-access admin token, for when
// every admin credential is lost, and shows its secret once. A wrong
// command line is an exitUsage error.
func recoverRoot(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokend recover-root", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "`directory` of the database to recover; the server using it must be stopped (it holds the database lock)")
	fs.StringVar(&cfg.RootTokenFile, "root-token-file", "", "write the new admin token to this new `file` (mode 0600) instead of printing it to stderr")
	fs.StringVar(&cfg.HashKeyFile, "hash-key-file", "", "`file` holding the hex HMAC key of secrets, as given to the server (default <data-dir>/hash.key; never created here)")
	fs.StringVar(&cfg.APIPrefix, "api-prefix", service.DefaultAPIPrefix, "`prefix` of API token secrets, as given to the server")
	fs.StringVar(&cfg.AdminPrefix, "admin-prefix", service.DefaultAdminPrefix, "`prefix` of admin token secrets, as given to the server")
	fs.Usage = flagUsage(fs, stderr, "Usage: tokend recover-root [flags]\n\n"+
		"Offline: mints a new unlimited full-access admin token in the database, records it in the audit\n"+
		"trail and shows its secret once. Stop the server first: it holds the database lock.")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return usageErrorf("%w", err)
	}
	logger, err := newLogger(stderr, "info", "text")
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Stderr = logger, stderr
	_, err = server.RecoverRoot(ctx, cfg)
	return err
}
