package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

// TestUpgradeBuildsOwnerIndex turns a store back into the version 1 layout
// (no owner index, no fences) and checks that Open upgrades it: the owners
// found are indexed, so the last of them cannot be taken away, and the
// fences are written.
func TestUpgradeBuildsOwnerIndex(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	s := openStore(t, srv, 5*time.Second)
	owner := func(name string) *storage.Token {
		t := testToken(name)
		t.Kind, t.Type = storage.KindAdmin, storage.TypeFullAccess
		return t
	}
	tokens := []*storage.Token{owner("root"), owner("second")}
	for i := range 200 {
		tokens = append(tokens, testToken(fmt.Sprintf("api %d", i)))
	}
	var want int64 // fences the tokens have
	for _, tok := range tokens {
		if err := s.CreateToken(ctx, tok, nil); err != nil {
			t.Fatal(err)
		}
		want += int64(len(s.fence(true, dirNames, storage.NameKey(tok.Name))) + len(s.fence(true, dirCreated, createdKey(tok.CreateTime, tok.ID))))
	}
	if want == 0 {
		t.Fatal("no token has a fence: the test would not see them rebuilt")
	}
	if _, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(s.key(dirOwners), clientv3.WithPrefix()),
		clientv3.OpDelete(s.key(dirFences), clientv3.WithPrefix()),
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
	fences, err := s.cli.Get(ctx, s.key(dirFences), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if fences.Count != want {
		t.Fatalf("%d fences after the upgrade, want %d", fences.Count, want)
	}
	if err := s.DeleteToken(ctx, "root", nil, nil); err != nil {
		t.Fatalf("deleting one of two owners after the upgrade: %v", err)
	}
	if err := s.DeleteToken(ctx, "second", nil, nil); !errors.Is(err, storage.ErrLastOwner) {
		t.Fatalf("deleting the last owner after the upgrade = %v, want ErrLastOwner", err)
	}
}
