package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// migrate copies a stopped bbolt store into an empty etcd prefix and
// verifies the copy. A wrong command line is an exitUsage error.
func migrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokend migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", server.DefaultDataDir, "`directory` of the bbolt store to copy (stop the tokend using it first)")
	store := &storeFlags{kind: storeEtcd}
	store.addEtcdFlags(fs)
	fs.Usage = flagUsage(fs, stderr, "Usage: tokend migrate -data-dir DIR -etcd-endpoints URLS [-etcd-prefix P]\n\n"+
		"Copies the bbolt store under DIR (tokens with their hashes and last-use times, actions, audit events,\n"+
		"key checks) into an empty etcd prefix, refusing a prefix that holds data, and verifies the copy.")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return usageErrorf("%w", err)
	}
	if len(store.endpointList()) == 0 {
		return usageErrorf("migrate needs -etcd-endpoints")
	}
	if err := store.checkEtcd(); err != nil {
		return usageErrorf("%w", err)
	}
	// bbolt creates a missing file: a mistyped -data-dir would otherwise
	// leave an empty database behind, and copy nothing.
	if _, err := os.Stat(server.DatabasePath(*dataDir)); err != nil {
		return fmt.Errorf("no database to migrate in %s: %w", *dataDir, err)
	}
	src, err := bolt.Open(server.DatabasePath(*dataDir), bolt.Options{})
	if err != nil {
		return fmt.Errorf("open the bbolt store (is a tokend still using it?): %w", err)
	}
	defer src.Close()
	dst, err := store.openEtcd(ctx, nil)
	if err != nil {
		return err
	}
	defer dst.Close()
	st, err := dst.Import(ctx, src)
	if err != nil {
		return err
	}
	if err := verifyCopy(ctx, src, dst); err != nil {
		return fmt.Errorf("the copy differs from the source (delete the prefix and migrate again): %w", err)
	}
	fmt.Fprintf(stderr, "migrated %s to etcd prefix %q and verified the copy: %d tokens, %d actions, %d audit events, %d key checks\n",
		server.DatabasePath(*dataDir), store.prefix, st.Tokens, st.Actions, st.AuditEvents, st.KeyChecks)
	return nil
}

// verifyCopy compares everything two stores hold, but audit event IDs
// (each store numbers its own).
func verifyCopy(ctx context.Context, a, b storage.Store) error {
	ta, err := allTokens(ctx, a)
	if err != nil {
		return err
	}
	tb, err := allTokens(ctx, b)
	if err != nil {
		return err
	}
	if len(ta) != len(tb) {
		return fmt.Errorf("%d tokens, copy has %d", len(ta), len(tb))
	}
	for i := range ta {
		x, y := *ta[i], *tb[i]
		if !sameToken(&x, &y) {
			return fmt.Errorf("token %q differs in the copy", x.ID)
		}
	}
	aa, err := a.ListActions(ctx)
	if err != nil {
		return err
	}
	ab, err := b.ListActions(ctx)
	if err != nil {
		return err
	}
	if !slices.EqualFunc(aa, ab, func(x, y storage.Action) bool {
		return x.ID == y.ID && x.Description == y.Description && x.RegisterTime.Equal(y.RegisterTime)
	}) {
		return errors.New("the action catalogs differ")
	}
	ea, err := allEvents(ctx, a)
	if err != nil {
		return err
	}
	eb, err := allEvents(ctx, b)
	if err != nil {
		return err
	}
	if !slices.EqualFunc(ea, eb, sameEvent) {
		return fmt.Errorf("the audit trails differ (%d and %d events)", len(ea), len(eb))
	}
	ka, err := a.KeyChecks(ctx)
	if err != nil {
		return err
	}
	kb, err := b.KeyChecks(ctx)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(ka, kb) {
		return errors.New("the key checks differ")
	}
	return nil
}

// sameToken compares every field; times by instant, empty and nil slices
// alike.
func sameToken(x, y *storage.Token) bool {
	return x.ID == y.ID && x.Name == y.Name && x.Description == y.Description && x.Kind == y.Kind && x.Type == y.Type &&
		slices.Equal(x.Permissions, y.Permissions) && x.Lifespan == y.Lifespan && x.ExpireTime.Equal(y.ExpireTime) &&
		x.CreateTime.Equal(y.CreateTime) && x.UpdateTime.Equal(y.UpdateTime) && x.LastUsedTime.Equal(y.LastUsedTime) &&
		slices.Equal(x.SecretHash, y.SecretHash) && x.SecretHint == y.SecretHint &&
		slices.Equal(x.PreviousSecretHash, y.PreviousSecretHash) && x.PreviousExpireTime.Equal(y.PreviousExpireTime) &&
		x.HashKeyID == y.HashKeyID
}

// sameEvent compares every field but the ID.
func sameEvent(x, y *storage.AuditEvent) bool {
	return x.Time.Equal(y.Time) && x.CallerID == y.CallerID && x.CallerName == y.CallerName &&
		x.Operation == y.Operation && x.TargetID == y.TargetID && x.TargetName == y.TargetName &&
		slices.Equal(x.Fields, y.Fields)
}

// allTokens lists every token by name.
func allTokens(ctx context.Context, s storage.Store) ([]*storage.Token, error) {
	var out []*storage.Token
	q := storage.ListQuery{Limit: 1000}
	for {
		page, err := s.ListTokens(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Tokens...)
		if page.Next == "" {
			return out, nil
		}
		q.After = page.Next
	}
}

// allEvents lists every audit event, newest first.
func allEvents(ctx context.Context, s storage.Store) ([]*storage.AuditEvent, error) {
	var out []*storage.AuditEvent
	q := storage.AuditQuery{Limit: 1000}
	for {
		page, err := s.ListAuditEvents(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Events...)
		if page.Next == "" {
			return out, nil
		}
		q.After = page.Next
	}
}
