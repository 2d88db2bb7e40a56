package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage/bolt"
)

// RecoverRoot mints a new unlimited full-access admin token, for when every
// admin credential is lost: in cfg.Store when it is set (a shared store such
// as etcd, which running replicas pick up like any other write; RecoverRoot
// closes it), else in the bbolt store of cfg.DataDir while no server runs.
// It uses cfg.Store, DataDir, HashKeyFile, RootTokenFile, APIPrefix,
// AdminPrefix, Logger and Stderr. The token is recorded in the audit trail;
// its secret is written to RootTokenFile (mode 0600) or, when that is empty,
// printed once to Stderr. It returns the new token's name.
//
// It refuses, changing nothing, when there is no database (bbolt) or no
// hash key, or the key matches none the store recorded (a token hashed
// under another key would never verify), when RootTokenFile already exists,
// and when the bbolt database is locked: a running server holds the lock,
// and must be stopped first.
func RecoverRoot(ctx context.Context, cfg Config) (name string, err error) {
	cfg = withDefaults(cfg)
	store := cfg.Store
	if store != nil {
		defer func() { err = errors.Join(err, store.Close()) }()
	}
	dbPath := DatabasePath(cfg.DataDir)
	if store == nil {
		if _, err := os.Stat(dbPath); err != nil {
			return "", fmt.Errorf("no database to recover in %s: %w", cfg.DataDir, err)
		}
	}
	if _, err := os.Stat(cfg.HashKeyFile); err != nil {
		return "", fmt.Errorf("hash key %s: %w (recovery needs the key the tokens were hashed with)", cfg.HashKeyFile, err)
	}
	if cfg.RootTokenFile != "" {
		if _, err := os.Lstat(cfg.RootTokenFile); !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("root token file %s already exists: remove it or name another", cfg.RootTokenFile)
		}
	}
	keys, err := readHashKeys(cfg.HashKeyFile)
	if err != nil {
		return "", err
	}
	if store == nil {
		b, err := bolt.Open(dbPath, bolt.Options{})
		if err != nil {
			return "", fmt.Errorf("%w (stop the server using this data directory first)", err)
		}
		defer func() { err = errors.Join(err, b.Close()) }()
		store = b
	}
	// A token minted under a key the store does not know would never
	// verify: the key file must match the recorded key checks.
	if keys, err = openHashKeys(ctx, store, cfg.HashKeyFile, keys); err != nil {
		return "", err
	}
	svc, err := service.New(ctx, service.Config{
		Store:       store,
		HashKeys:    keys,
		APIPrefix:   cfg.APIPrefix,
		AdminPrefix: cfg.AdminPrefix,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, svc.Close(context.WithoutCancel(ctx))) }()
	tok, secret, err := svc.RecoverRoot(ctx)
	if err != nil {
		return "", err
	}
	if cfg.RootTokenFile != "" {
		err := writeSecretFile(cfg.RootTokenFile, secret+"\n")
		if err == nil {
			cfg.Logger.Info("recovered root admin token written", slog.String("name", tok.Name), slog.String("file", cfg.RootTokenFile))
			return tok.Name, nil
		}
		// The token exists now: losing its secret would undo the
		// recovery, so show it rather than fail.
		cfg.Logger.Error("could not write the root token file; printing the token instead", slog.Any("error", err))
	}
	fmt.Fprintf(cfg.Stderr, "\nRecovered admin token %q (unlimited, full access). It is shown once and never again:\n\n    %s\n\n", tok.Name, secret)
	return tok.Name, nil
}
