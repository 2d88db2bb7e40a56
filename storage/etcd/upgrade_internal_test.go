package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

// TestUpgradeBuildsOwnerIndex turns a store back into the version 1 layout
// (no owner index) and checks that Open upgrades it: the owners found are
// indexed, so the last of them cannot be taken away.
func TestUpgradeBuildsOwnerIndex(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	s := openStore(t, srv, 5*time.Second)
	owner := func(name string) *storage.Token {
		t := testToken(name)
		t.Kind, t.Type = storage.KindAdmin, storage.TypeFullAccess
		return t
	}
	for _, tok := range []*storage.Token{owner("root"), owner("second"), testToken("api")} {
		if err := s.CreateToken(ctx, tok, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(s.key(dirOwners), clientv3.WithPrefix()),
		clientv3.OpPut(s.key(keySchemaVersion), schemaVersionV1),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, srv, 5*time.Second)
	resp, err := s.cli.Get(ctx, s.key(keySchemaVersion))
	if err != nil {
		t.Fatal(err)
	}
	if v := string(resp.Kvs[0].Value); v != schemaVersion {
		t.Fatalf("schema version %q after Open, want %q", v, schemaVersion)
	}
	if err := s.DeleteToken(ctx, "root", nil, nil); err != nil {
		t.Fatalf("deleting one of two owners after the upgrade: %v", err)
	}
	if err := s.DeleteToken(ctx, "second", nil, nil); !errors.Is(err, storage.ErrLastOwner) {
		t.Fatalf("deleting the last owner after the upgrade = %v, want ErrLastOwner", err)
	}
}
