package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// Config is everything Start needs. Zero values take the documented defaults.
type Config struct {
	GRPCAddr string // default ":9090"; ":0" picks a free port
	HTTPAddr string // default ":8080"
	DataDir  string // default "./data"; holds tokend.db and, by default, hash.key
	// RootTokenFile receives the root admin secret on first start (mode
	// 0600); when empty the secret is printed once to Stderr.
	RootTokenFile string
	// HashKeyFile holds the HMAC key of secrets; default DataDir/hash.key,
	// generated on first start.
	HashKeyFile   string
	Lifespans     []time.Duration // default service.DefaultLifespans
	APIPrefix     string          // default "tkd"
	AdminPrefix   string          // default "tkda"
	FlushInterval time.Duration   // last-use flush period; default 1 minute
	MaxBodyBytes  int64           // REST request body limit; default 1 MiB
	// AuditRetention is how long audit events are kept; default one year,
	// negative keeps them forever.
	AuditRetention time.Duration
	// AuthFailureLimit failed authentications per minute from one client
	// address are answered as usual; further ones get ResourceExhausted
	// (429) until the minute ends. Default 20, negative disables damping.
	AuthFailureLimit int
	// TLSCertFile and TLSKeyFile, when set, serve both ports over TLS.
	// TLSClientCAFile additionally requires gRPC clients to present a
	// certificate signed by that CA (mutual TLS).
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	Logger                                   *slog.Logger // default: text on Stderr
	Stderr                                   io.Writer    // where the root secret is printed; default os.Stderr

	// Store, when set, is the store the server uses instead of opening a
	// bbolt file under DataDir. The server takes ownership and closes it.
	Store storage.Store

	now func() time.Time // the service's clock; set by this package's tests
}

// Defaults for Config.
const (
	DefaultGRPCAddr     = ":9090"
	DefaultHTTPAddr     = ":8080"
	DefaultDataDir      = "./data"
	DefaultMaxBodyBytes = 1 << 20
	// DefaultAuditRetention keeps a year of audit events.
	DefaultAuditRetention = 365 * 24 * time.Hour
	auditPruneInterval    = time.Hour
	hashKeyFile           = "hash.key"
)

// Server is a running tokend.
type Server struct {
	log            *slog.Logger
	store          storage.Store
	svc            *service.Service
	grpcServer     *grpc.Server
	inProcess      *inProcess // the gateway's connection to the service
	httpDeps       httpDeps
	health         *health.Server
	httpServer     *http.Server
	grpcLis        net.Listener
	httpLis        net.Listener
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	serveErr       chan error
}

// Start opens the store, bootstraps it on first start, and starts serving
// gRPC and HTTP. It returns once both listeners are bound.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = withDefaults(cfg)
	s := &Server{log: cfg.Logger, serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()

	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	keys, err := loadOrCreateHashKeys(cfg.HashKeyFile)
	if err != nil {
		return nil, err
	}
	if s.store = cfg.Store; s.store == nil {
		st, err := bolt.Open(filepath.Join(cfg.DataDir, bolt.FileName), bolt.Options{})
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	begin := time.Now()
	s.svc, err = service.New(ctx, service.Config{
		Store:       s.store,
		HashKeys:    keys,
		APIPrefix:   cfg.APIPrefix,
		AdminPrefix: cfg.AdminPrefix,
		Lifespans:   cfg.Lifespans,
		Logger:      cfg.Logger,
		Now:         cfg.now,

		AuthFailureLimit: cfg.AuthFailureLimit,
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("tokens loaded", slog.Int("tokens", s.svc.TokenCount()), slog.Duration("took", time.Since(begin)))
	if err := s.bootstrap(ctx, cfg); err != nil {
		return nil, err
	}

	backgroundCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBackground = stop
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		s.svc.RunFlusher(backgroundCtx, cfg.FlushInterval)
	}()
	if cfg.AuditRetention > 0 {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			s.pruneAudit(backgroundCtx, cfg.AuditRetention)
		}()
	}

	views, err := newIntrospectViews()
	if err != nil {
		return nil, err
	}
	svc := tokenService{Service: s.svc, views: views}
	obs := &observer{log: s.log, m: newMetrics(s.svc)}

	var grpcOpts []grpc.ServerOption
	if tlsConfig != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsConfig.grpc)))
	}
	s.grpcServer = newGRPCServer(svc, obs.chain(transportGRPC), grpcOpts...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpcServer, s.health)
	reflection.Register(s.grpcServer)

	if s.inProcess, err = startInProcess(svc, obs.chain(transportREST)); err != nil {
		return nil, fmt.Errorf("in-process gRPC connection: %w", err)
	}
	s.httpDeps = httpDeps{svc: s.svc, conn: s.inProcess.direct, views: views, obs: obs, maxBody: cfg.MaxBodyBytes}
	handler, err := newHTTPHandler(ctx, s.httpDeps)
	if err != nil {
		return nil, err
	}
	s.httpServer = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HTTP listener: %w", err)
	}

	go func() { s.serveErr <- s.grpcServer.Serve(s.grpcLis) }()
	go func() {
		var err error
		if tlsConfig != nil {
			s.httpServer.TLSConfig = tlsConfig.http
			err = s.httpServer.ServeTLS(s.httpLis, "", "")
		} else {
			err = s.httpServer.Serve(s.httpLis)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
	s.log.Info("serving", slog.String("grpc", s.grpcLis.Addr().String()), slog.String("http", s.httpLis.Addr().String()))
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.HashKeyFile == "" {
		cfg.HashKeyFile = filepath.Join(cfg.DataDir, hashKeyFile)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.AuditRetention == 0 {
		cfg.AuditRetention = DefaultAuditRetention
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(cfg.Stderr, nil))
	}
	return cfg
}

// bootstrap creates the first tokens of a new store and hands the root
// secret over, once.
func (s *Server) bootstrap(ctx context.Context, cfg Config) error {
	secret, err := s.svc.Bootstrap(ctx)
	if err != nil || secret == "" {
		return err
	}
	if cfg.RootTokenFile != "" {
		// Replace a leftover file: the secret just created is the only one
		// that works.
		_ = os.Remove(cfg.RootTokenFile)
		err := writeSecretFile(cfg.RootTokenFile, secret+"\n")
		if err == nil {
			s.log.Info("first start: root admin token written", slog.String("file", cfg.RootTokenFile))
			return nil
		}
		// The store is bootstrapped already: losing the secret now would
		// lock everyone out for good, so show it rather than fail.
		s.log.Error("first start: could not write the root token file; printing the token instead", slog.Any("error", err))
	}
	fmt.Fprintf(cfg.Stderr, "\nFirst start: this is the root admin token. It is shown once and never again:\n\n    %s\n\n", secret)
	return nil
}

// pruneAudit deletes audit events older than retention, at start and then
// every hour, until ctx is done.
func (s *Server) pruneAudit(ctx context.Context, retention time.Duration) {
	t := time.NewTicker(auditPruneInterval)
	defer t.Stop()
	for {
		if n, err := s.svc.PruneAuditEvents(ctx, retention); err != nil && ctx.Err() == nil {
			s.log.Error("prune audit events", slog.Any("error", err))
		} else if n > 0 {
			s.log.Info("pruned audit events", slog.Int("deleted", n), slog.Duration("retention", retention))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// GRPCAddr returns the address the gRPC server listens on.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr returns the address the HTTP server listens on.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// Service returns the running service.
func (s *Server) Service() *service.Service { return s.svc }

// Err returns a channel that receives an error if a server stops serving on
// its own.
func (s *Server) Err() <-chan error { return s.serveErr }

// Shutdown stops taking requests, waits for in-flight ones until ctx is done
// (then cuts them off), flushes last-use times and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.close(ctx)
}

func (s *Server) close(ctx context.Context) error {
	var errs []error
	if s.health != nil {
		s.health.Shutdown()
	}
	if s.httpServer != nil {
		if err := s.httpServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
			s.httpServer.Close()
		}
	}
	if s.httpLis != nil {
		s.httpLis.Close() // not yet served when Start failed; closing twice is harmless
	}
	if s.inProcess != nil {
		s.inProcess.stop(ctx)
	}
	if s.grpcServer != nil {
		stopServer(ctx, s.grpcServer)
	}
	if s.grpcLis != nil {
		s.grpcLis.Close()
	}
	if s.stopBackground != nil {
		s.stopBackground()
		s.background.Wait()
	}
	if s.svc != nil {
		if err := s.svc.Close(context.WithoutCancel(ctx)); err != nil {
			errs = append(errs, err)
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}
