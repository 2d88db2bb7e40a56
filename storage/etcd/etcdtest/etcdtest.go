package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/embed"
)

// Server is one embedded etcd member.
type Server struct {
	t   testing.TB
	dir string
	// name and cluster are the member's name and the initial cluster
	// (name=peerURL,...); cluster is empty for a single member.
	name, cluster string

	mu     sync.Mutex
	e      *embed.Etcd
	client *url.URL
	peer   *url.URL
}

// Start starts a single-member etcd cluster that stops when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), name: "tokend-test"}
	s.client, _ = url.Parse("http://127.0.0.1:0")
	s.peer, _ = url.Parse("http://127.0.0.1:0")
	if err := s.start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartCluster starts an n-member etcd cluster that stops when t ends.
// Its members' peer ports must be known before any starts, so they are
// ports the kernel handed out and the test released just before.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	members := make([]*Server, n)
	var initial []string
	for i := range members {
		s := &Server{t: t, dir: t.TempDir(), name: fmt.Sprintf("member%d", i)}
		s.client, _ = url.Parse("http://127.0.0.1:0")
		s.peer, _ = url.Parse("http://" + freePort(t))
		initial = append(initial, s.name+"="+s.peer.String())
		members[i] = s
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range members {
		s.cluster = strings.Join(initial, ",")
		t.Cleanup(s.Stop)
		wg.Go(func() { errs[i] = s.start() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start etcd member %d: %v", i, err)
		}
	}
	return members
}

// freePort returns a loopback address with a port nothing listens on.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = s.name
	cfg.Dir = s.dir
	cfg.LogLevel = "fatal"
	cfg.UnsafeNoFsync = true
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*s.client}, []url.URL{*s.client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*s.peer}, []url.URL{*s.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if s.cluster != "" {
		cfg.InitialCluster = s.cluster
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	// Members of a new cluster wait for each other here.
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return err
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("not ready after 30s")
	}
	// Keep the ports the kernel chose, so a restart comes back on them.
	s.client, _ = url.Parse("http://" + e.Clients[0].Addr().String())
	s.peer, _ = url.Parse("http://" + e.Peers[0].Addr().String())
	s.e = e
	return nil
}

// Endpoint returns the client URL.
func (s *Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.String()
}

// Stop stops the member; it does nothing if it is stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

// Restart starts a stopped member again on the same ports and data. It
// fails the test if it cannot.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("restart etcd: %v", err)
	}
}

// Compact compacts the history up to the current revision, as an operator
// or etcd's auto-compaction does.
func (s *Server) Compact() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.e.Server.KV().Rev()
	done, err := s.e.Server.KV().Compact(traceutil.TODO(), rev)
	if err != nil {
		s.t.Fatalf("compact: %v", err)
	}
	<-done
}
