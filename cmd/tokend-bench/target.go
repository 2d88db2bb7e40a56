package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/storage/etcd"
)

// target is a server under measurement and what the load presents to it.
type target struct {
	grpcAddr, httpAddr string
	admin              string   // admin secret: create, introspect, delete
	secrets            []string // API token secrets the load introspects
	created            []string // ids of tokens to delete at the end (running server)
	srv                *server.Server
	etcd               *etcd.Config // the in-process server's etcd store, nil for bbolt
}

// checkLoopback refuses an address that is not on the loopback interface:
// the command is a load generator and must only ever load this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q: only loopback addresses (127.0.0.1, ::1, localhost) may be loaded", addr)
}

// layout names the files of in-process servers under one directory. Every
// server shares the hash key file, so that tokens written by one are valid
// for the next (see seedDirect).
type layout struct{ dir string }

func (l layout) keyFile() string            { return filepath.Join(l.dir, "hash.key") }
func (l layout) dataDir(name string) string { return filepath.Join(l.dir, name) }

// serverConfig is the configuration of an in-process server over the data
// directory name of l: loopback ports picked by the system, the shared key.
func (l layout) serverConfig(name string, logMode string) server.Config {
	return server.Config{
		GRPCAddr:      "127.0.0.1:0",
		HTTPAddr:      "127.0.0.1:0",
		DataDir:       l.dataDir(name),
		HashKeyFile:   l.keyFile(),
		RootTokenFile: filepath.Join(l.dataDir(name), "root.token"),
		Logger:        serverLogger(logMode, os.Stderr),
		Stderr:        io.Discard,
	}
}

// rootToken reads the root secret a first start wrote.
func rootToken(cfg server.Config) (string, error) {
	b, err := os.ReadFile(cfg.RootTokenFile)
	if err != nil {
		return "", fmt.Errorf("root token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// workDir returns the directory for in-process servers and a function that
// removes it if it was created here.
func workDir(cfg config) (string, func(), error) {
	if cfg.dataDir != "" {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return "", nil, err
		}
		entries, err := os.ReadDir(cfg.dataDir)
		if err != nil {
			return "", nil, err
		}
		if len(entries) > 0 {
			return "", nil, fmt.Errorf("-data-dir %s is not empty", cfg.dataDir)
		}
		return cfg.dataDir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "tokend-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// openTarget starts and seeds an in-process server, or connects to the
// running one and seeds it through the API.
func openTarget(ctx context.Context, cfg config, dir string, out io.Writer) (*target, error) {
	if cfg.remote() {
		t := &target{grpcAddr: cfg.grpcAddr, httpAddr: cfg.httpAddr, admin: cfg.adminToken}
		begin := time.Now()
		ids, secrets, err := createTokens(ctx, t, cfg.tokens, cfg.concurrency, "seed")
		t.created = ids
		if err != nil {
			return t, err
		}
		t.secrets = secrets
		fmt.Fprintf(out, "seeded %d tokens through the API in %v\n", cfg.tokens, time.Since(begin).Round(time.Millisecond))
		return t, nil
	}

	l := layout{dir}
	scfg := l.serverConfig("data", cfg.serverLog)
	scfg.AuthRoutesFile = filepath.Join(dir, "auth-routes.yaml")
	if err := os.WriteFile(scfg.AuthRoutesFile, []byte(benchRoutes), 0o600); err != nil {
		return nil, err
	}
	var admin string
	var secrets []string
	if cfg.seedDirect {
		begin := time.Now()
		var err error
		admin, secrets, err = seedDirect(ctx, l, cfg.tokens, cfg.probeTokens, cfg.concurrency, cfg.serverLog)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "seeded %d tokens directly (%d through the API) in %v\n", cfg.tokens, len(secrets), time.Since(begin).Round(time.Millisecond))
		freeMemory()
	}
	var ecfg *etcd.Config
	if cfg.etcdEndpoints != "" {
		// A fresh prefix per run: the store starts empty, as a data dir does.
		ecfg = &etcd.Config{
			Endpoints: strings.Split(cfg.etcdEndpoints, ","),
			Prefix:    fmt.Sprintf("/tokend-bench/%d/", time.Now().UnixNano()),
		}
		store, err := etcd.Open(ctx, *ecfg)
		if err != nil {
			return nil, err
		}
		scfg.Store = store
	}
	begin := time.Now()
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return nil, err
	}
	t := &target{grpcAddr: srv.GRPCAddr().String(), httpAddr: srv.HTTPAddr().String(), srv: srv, admin: admin, secrets: secrets, etcd: ecfg}
	fmt.Fprintf(out, "server started in %v with %d tokens\n", time.Since(begin).Round(time.Millisecond), srv.Service().TokenCount())
	if !cfg.seedDirect {
		if t.admin, err = rootToken(scfg); err != nil {
			return t, err
		}
		begin := time.Now()
		if _, t.secrets, err = createTokens(ctx, t, cfg.tokens, cfg.concurrency, "seed"); err != nil {
			return t, err
		}
		fmt.Fprintf(out, "seeded %d tokens through the API in %v\n", cfg.tokens, time.Since(begin).Round(time.Millisecond))
	}
	return t, nil
}

// close deletes the tokens the run created on a running server, or shuts
// the in-process server down. Closing twice does nothing more.
func (t *target) close(ctx context.Context) error {
	if t.srv != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		srv := t.srv
		// The in-process store is thrown away: nothing to delete.
		t.srv, t.created = nil, nil
		return srv.Shutdown(ctx)
	}
	if len(t.created) == 0 {
		return nil
	}
	ids := t.created
	t.created = nil
	return deleteTokens(context.WithoutCancel(ctx), t, ids)
}

// dialGRPC opens n client connections (each its own HTTP/2 connection).
func dialGRPC(addr string, n int) ([]*grpc.ClientConn, func(), error) {
	conns := make([]*grpc.ClientConn, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		c.Connect()
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}

// withAdmin returns ctx carrying the admin credential as gRPC metadata.
func withAdmin(ctx context.Context, admin string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+admin)
}

// tokenClient returns a client of one fresh connection, and its closer.
func tokenClient(t *target) (tokendv1.TokenServiceClient, func(), error) {
	conns, closeAll, err := dialGRPC(t.grpcAddr, 1)
	if err != nil {
		return nil, nil, err
	}
	return tokendv1.NewTokenServiceClient(conns[0]), closeAll, nil
}

var errInactive = errors.New("introspection answered inactive for a token that should be active")
