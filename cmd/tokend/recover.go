package main

import (
	"context"
	"flag"
	"io"

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
)

// recoverRoot runs `tokend recover-root`: it mints a new unlimited
// full-access admin token, for when every admin credential is lost, and shows
// its secret once; in a bbolt store only while no server runs on it, in etcd
// beside the running replicas. A wrong
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
	store := addStoreFlags(fs)
	fs.Usage = flagUsage(fs, stderr, "Usage: tokend recover-root [flags]\n\n"+
		"Mints a new unlimited full-access admin token in the store, records it in the audit trail and shows\n"+
		"its secret once. With bbolt (the default) stop the server first: it holds the database lock. With\n"+
		"-store etcd the replicas may keep running: they pick the new token up like any other write.")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return usageErrorf("%w", err)
	}
	if err := store.check(cfg.HashKeyFile); err != nil {
		return usageErrorf("%w", err)
	}
	logger, err := newLogger(stderr, "info", "text")
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Stderr = logger, stderr
	if cfg.Store, err = store.open(ctx, logger); err != nil {
		return err
	}
	_, err = server.RecoverRoot(ctx, cfg)
	return err
}
