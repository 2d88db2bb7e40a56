package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd"
	"github.com/tokend/tokend/storage/etcd/etcdtest"
	"github.com/tokend/tokend/storage/storagetest"
)

// open opens a store on srv under prefix, closed when t ends.
func open(t *testing.T, srv *etcdtest.Server, prefix string) *etcd.Store {
	t.Helper()
	s, err := etcd.Open(context.Background(), etcd.Config{
		Endpoints: []string{srv.Endpoint()}, Prefix: prefix,
		RequestTimeout: 5 * time.Second, ProgressInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	// One etcd for the whole suite; each subtest gets a fresh prefix,
	// which is what keeps installations sharing an etcd apart.
	srv := etcdtest.Start(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Store {
		n++
		return open(t, srv, fmt.Sprintf("/conformance/%d/", n))
	})
}
