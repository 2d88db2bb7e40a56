package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	runtimemetrics "runtime/metrics"
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
	GRPCAddr string // default "127.0.0.1:9090"; ":0" picks a free port
	HTTPAddr string // default "127.0.0.1:8080"
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
	// HTTPReadTimeout bounds the reading of a REST request's body and
	// HTTPWriteTimeout the writing of its answer, per request; defaults
	// DefaultHTTPReadTimeout and DefaultHTTPWriteTimeout.
	HTTPReadTimeout, HTTPWriteTimeout time.Duration
	// GRPCMaxStreams bounds the calls in flight on one gRPC connection
	// (default DefaultGRPCMaxStreams); GRPCMaxConnectionIdle closes a
	// connection idle that long (default DefaultGRPCMaxConnectionIdle).
	GRPCMaxStreams        int
	GRPCMaxConnectionIdle time.Duration
	// AuditRetention is how long audit events are kept; default one year,
	// negative keeps them forever.
	AuditRetention time.Duration
	// AuthFailureLimit failed authentications per minute from one client
	// address are answered as usual; further ones get ResourceExhausted
	// (429) until the minute ends. Default 20, negative disables damping.
	AuthFailureLimit int
	// MaxActions bounds the API action catalog; default
	// service.DefaultMaxActions.
	MaxActions int
	// AuthRoutesFile is the route table of forward auth (/v1/auth), read at
	// start and again by ReloadAuthRoutes; without it /v1/auth denies every
	// request.
	AuthRoutesFile string
	// TLSCertFile and TLSKeyFile, when set, serve both ports over TLS 1.2
	// or later (AEAD suites only), with HSTS on HTTP. TLSClientCAFile
	// makes both ports verify client certificates against that CA, under
	// TLSClientAuth: ClientAuthRequire (the default) or
	// ClientAuthVerifyIfGiven.
	TLSCertFile, TLSKeyFile, TLSClientCAFile, TLSClientAuth string

	Logger *slog.Logger // default: text on Stderr
	Stderr io.Writer    // where the root secret is printed; default os.Stderr
	// Store, when set, is the store the server uses instead of opening a
	// bbolt file under DataDir. The server takes ownership and closes it.
	Store storage.Store
	// MaxStaleness is service.Config.MaxStaleness: how long introspection
	// answers from memory while a shared store is unreachable.
	MaxStaleness time.Duration
	// ExpiryWarnings are the times before a token's expiry at which
	// watchers get an EXPIRING event (default 168h and 24h); WatchHeartbeat
	// is the interval of watch heartbeats (default 15 s); WatchBuffer is
	// how many events are kept for lagging or reconnecting watchers
	// (default 4096).
	ExpiryWarnings []time.Duration
	WatchHeartbeat time.Duration
	WatchBuffer    int

	now func() time.Time // the service's clock; set by this package's tests
}

// Defaults for Config.
const (
	// The default addresses are on loopback: reaching tokend from other
	// hosts is a decision (and, without TLS, a warning at start).
	DefaultGRPCAddr     = "127.0.0.1:9090"
	DefaultHTTPAddr     = "127.0.0.1:8080"
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
	load           LoadStats
	svc            *service.Service
	grpcServer     *grpc.Server
	inProcess      *inProcess // the gateway's connection to the service
	httpDeps       httpDeps
	health         *health.Server
	httpServer     *http.Server
	grpcLis        net.Listener
	httpLis        net.Listener
	forwardAuth    *forwardAuth
	authRoutesFile string
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	serveErr       chan error
}

// Start opens the store, bootstraps it on first start, and starts serving
// gRPC and HTTP. It returns once both listeners are bound.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = withDefaults(cfg)
	s := &Server{log: cfg.Logger, serveErr: make(chan error, 2), store: cfg.Store}
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
	// A key file that is there but unusable is refused before the
	// database is opened (or created); a missing one is judged against
	// what the database holds.
	keys, err := readHashKeys(cfg.HashKeyFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if s.store == nil {
		b, err := bolt.Open(DatabasePath(cfg.DataDir), bolt.Options{})
		if err != nil {
			return nil, err
		}
		s.store = b
	}
	if keys, err = openHashKeys(ctx, s.store, cfg.HashKeyFile, keys); err != nil {
		return nil, err
	}
	gcBefore := gcCycles()
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
		MaxActions:       cfg.MaxActions,
		MaxStaleness:     cfg.MaxStaleness,
		ExpiryWarnings:   cfg.ExpiryWarnings,
		WatchHeartbeat:   cfg.WatchHeartbeat,
		WatchBuffer:      cfg.WatchBuffer,
	})
	if err != nil {
		return nil, err
	}
	s.load = LoadStats{Took: time.Since(begin), GCCycles: gcCycles() - gcBefore}
	// The split of the replay is the bbolt store's: another store reports
	// the total only.
	if b, ok := s.store.(*bolt.Store); ok {
		if r, ok := b.LastReplay(); ok {
			s.load.Read, s.load.Decode, s.load.Index = r.Read, r.Decode, r.Apply
		}
	}
	s.log.Info("tokens loaded", slog.Int("tokens", s.svc.TokenCount()), slog.Duration("took", s.load.Took),
		slog.Duration("read", s.load.Read), slog.Duration("decode", s.load.Decode), slog.Duration("index", s.load.Index),
		slog.Uint64("gc_cycles", s.load.GCCycles))
	if err := s.bootstrap(ctx, cfg); err != nil {
		return nil, err
	}
	s.logHashKeys()

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
	obs := newObserver(s.log, newMetrics(s.svc))

	grpcOpts := grpcLimits(cfg)
	if tlsConfig != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsConfig.grpc)))
	}
	s.grpcServer = newGRPCServer(svc, obs.chain(transportGRPC), grpcOpts...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpcServer, s.health)
	reflection.Register(s.grpcServer)

	s.forwardAuth, s.authRoutesFile = newForwardAuth(s.svc, s.log), cfg.AuthRoutesFile
	if cfg.AuthRoutesFile != "" {
		n, err := s.forwardAuth.loadAuthRoutes(cfg.AuthRoutesFile)
		if err != nil {
			return nil, err
		}
		s.log.Info("forward auth routes loaded", slog.String("file", cfg.AuthRoutesFile), slog.Int("rules", n))
	}
	if s.inProcess, err = startInProcess(svc, obs.chain(transportREST)); err != nil {
		return nil, fmt.Errorf("in-process gRPC connection: %w", err)
	}
	s.httpDeps = httpDeps{svc: s.svc, conn: s.inProcess.direct, views: views, obs: obs, maxBody: cfg.MaxBodyBytes, auth: s.forwardAuth}
	handler, err := newHTTPHandler(ctx, s.httpDeps)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		handler = strictTransport(handler)
	}
	s.httpServer = &http.Server{
		Handler:           requestDeadlines(cfg.HTTPReadTimeout, cfg.HTTPWriteTimeout, handler),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
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
	if tlsConfig == nil {
		warnPlaintext(s.log, s.grpcLis.Addr(), s.httpLis.Addr())
	}
	s.log.Info("serving", slog.String("grpc", s.grpcLis.Addr().String()), slog.String("http", s.httpLis.Addr().String()))
	return s, nil
}

// warnPlaintext logs a warning for each address, served without TLS, that
// other hosts can reach: admin tokens and the secrets sent to Introspect
// would cross the network in clear.
func warnPlaintext(log *slog.Logger, addrs ...net.Addr) {
	for _, a := range addrs {
		if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
			continue
		}
		log.Warn("serving plaintext on a non-loopback address: credentials and secrets cross the network in clear; "+
			"set -tls-cert and -tls-key, or listen on 127.0.0.1 behind a TLS-terminating proxy", slog.String("addr", a.String()))
	}
}

// DatabasePath returns the bbolt file the server keeps under dataDir.
func DatabasePath(dataDir string) string { return filepath.Join(dataDir, bolt.FileName) }

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
	if cfg.HTTPReadTimeout <= 0 {
		cfg.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if cfg.HTTPWriteTimeout <= 0 {
		cfg.HTTPWriteTimeout = DefaultHTTPWriteTimeout
	}
	if cfg.GRPCMaxStreams <= 0 {
		cfg.GRPCMaxStreams = DefaultGRPCMaxStreams
	}
	if cfg.GRPCMaxConnectionIdle <= 0 {
		cfg.GRPCMaxConnectionIdle = DefaultGRPCMaxConnectionIdle
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

// logHashKeys logs how many tokens use each hash key, so that an operator
// who rotated keys knows when an old one can go, and warns about tokens
// whose key is no longer in the key file (they can no longer be used).
func (s *Server) logHashKeys() {
	counts := s.svc.TokensByHashKey()
	for i, id := range s.svc.HashKeyIDs() {
		s.log.Info("hash key", slog.String("key_id", id), slog.Bool("newest", i == 0), slog.Int("tokens", counts[id]))
		delete(counts, id)
	}
	for id, n := range counts {
		if id == "" {
			s.log.Info("hash key", slog.String("key_id", "unrecorded"), slog.Int("tokens", n),
				slog.String("note", "tokens hashed before key ids were recorded; regenerating one records its key"))
			continue
		}
		s.log.Warn("hash key missing from the key file", slog.String("key_id", id), slog.Int("tokens", n))
	}
}

// pruneAudit deletes audit events older than retention, at start and then
// every hour, until ctx is done or the store reports damage.
func (s *Server) pruneAudit(ctx context.Context, retention time.Duration) {
	t := time.NewTicker(auditPruneInterval)
	defer t.Stop()
	for {
		n, err := s.svc.PruneAuditEvents(ctx, retention)
		if errors.Is(err, storage.ErrCorrupt) {
			// Pruning again would meet the same damage every hour;
			// readiness reports it from now on (the store's Ping does).
			s.log.Error("audit pruning stopped: the database file is damaged; restore it from a backup", slog.Any("error", err))
			return
		}
		if err != nil && ctx.Err() == nil {
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

// ReloadAuthRoutes reads Config.AuthRoutesFile again and serves the new
// route table from the next request on. It returns an error, and keeps the
// table in use, when the file cannot be read or is not a valid table, or
// when no file was configured.
func (s *Server) ReloadAuthRoutes() error {
	n, err := s.forwardAuth.loadAuthRoutes(s.authRoutesFile)
	if err != nil {
		return fmt.Errorf("forward auth routes not reloaded, the previous ones stay in use: %w", err)
	}
	s.log.Info("forward auth routes reloaded", slog.String("file", s.authRoutesFile), slog.Int("rules", n))
	return nil
}

// GRPCAddr returns the address the gRPC server listens on.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr returns the address the HTTP server listens on.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// LoadStats is what loading the stored tokens into the service took at
// Start.
type LoadStats struct {
	// Took is the whole load: sizing the index and replaying the store.
	Took time.Duration
	// Read, Decode and Index split the replay: walking the records in the
	// database file (page faults included), decoding them, and adding them
	// to the index.
	Read, Decode, Index time.Duration
	// GCCycles is the number of garbage collections that completed in
	// this process during the load (any goroutine's, not only the load's).
	GCCycles uint64
}

// Load returns what loading the stored tokens took at Start.
func (s *Server) Load() LoadStats { return s.load }

// gcCycles returns the number of garbage collections completed so far.
func gcCycles() uint64 {
	sample := []runtimemetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	runtimemetrics.Read(sample)
	if sample[0].Value.Kind() != runtimemetrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

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
	if s.svc != nil {
		s.svc.EndWatches() // they never end on their own
	}
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
