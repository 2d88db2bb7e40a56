package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

const usage = `tokend-bench measures tokend's introspection (gRPC, REST, and forward auth at
/v1/auth) against the transport's own baseline (grpc.health.v1 Check,
GET /healthz), its create throughput, its start-up time and memory with many
tokens, and, on etcd, how fast a change reaches another replica.

Usage:
  tokend-bench [flags]                          start a server in-process and measure
  tokend-bench -tokens 1000000 -seed-direct     the same with 10^6 tokens in the store
  tokend-bench -startup-tokens 1000000          start-up time and memory only
  tokend-bench -startup-tokens 1000000 -startup-baseline /tmp/tokend-base
                                                the same, alternating with another tokend binary
  tokend-bench -etcd-endpoints URL              the load with the server on etcd
  tokend-bench -etcd-endpoints URL -propagation 500
                                                how fast a change on one replica reaches another
  tokend-bench -peer-url http://127.0.0.1:1337/_health
                                                the same, beside another service's route
  tokend-bench -grpc-addr 127.0.0.1:9090 -http-addr 127.0.0.1:8080 -admin-token tkda_…
                                                measure a running server (loopback only)

Flags:
`

// config is what the flags say.
type config struct {
	tokens        int
	seedDirect    bool
	probeTokens   int
	grpcAddr      string
	httpAddr      string
	adminToken    string
	conns         int
	concurrency   int
	rounds        int
	duration      time.Duration
	warmup        time.Duration
	creates       int
	startupTokens int
	settle        time.Duration
	baseline      string
	serverLog     string
	dataDir       string
	cpuProfile    string
	memProfile    string
	verbose       bool
	etcdEndpoints string
	propagation   int
	peerURL       string
}

// remote reports whether the target is a running server.
func (c config) remote() bool { return c.grpcAddr != "" || c.httpAddr != "" }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "tokend-bench:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.startupTokens > 0 {
		stopProfile, err := startCPUProfile(cfg.cpuProfile, "startup")
		if err != nil {
			return err
		}
		return errors.Join(runStartup(ctx, cfg, stdout), stopProfile())
	}
	if cfg.propagation > 0 {
		return runPropagation(ctx, cfg, stdout)
	}
	return runLoad(ctx, cfg, stdout)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("tokend-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.IntVar(&cfg.tokens, "tokens", 1000, "API `tokens` to put in the store before measuring (besides the three of the first start)")
	fs.BoolVar(&cfg.seedDirect, "seed-direct", false, "write the tokens straight into the store file before the server starts (in-process only; use it for large -tokens)")
	fs.IntVar(&cfg.probeTokens, "probe-tokens", 1000, "with -seed-direct, how many of the tokens are created through the API: their secrets are the ones the load presents")
	fs.StringVar(&cfg.grpcAddr, "grpc-addr", "", "gRPC `address` of a running server on the loopback interface (default: start one in-process)")
	fs.StringVar(&cfg.httpAddr, "http-addr", "", "HTTP `address` of a running server on the loopback interface")
	fs.StringVar(&cfg.adminToken, "admin-token", os.Getenv("TOKEND_BENCH_ADMIN_TOKEN"), "admin `secret` for a running server, holding tokend.token.create, .introspect and .delete (env TOKEND_BENCH_ADMIN_TOKEN)")
	fs.IntVar(&cfg.conns, "conns", 8, "client `connections` per transport (HTTP/1.1 carries one request at a time per connection, gRPC multiplexes)")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "concurrent `workers` per measurement")
	fs.IntVar(&cfg.rounds, "rounds", 5, "measurement `rounds`; each measures every call once, in alternating order")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "length of one measurement")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "warm-up of each call before the rounds")
	fs.IntVar(&cfg.creates, "creates", 400, "CreateToken `calls` for the create throughput, serial and concurrent (0 skips it)")
	fs.IntVar(&cfg.startupTokens, "startup-tokens", 0, "measure only start-up time and memory of a server with this many `tokens` (seeded directly)")
	fs.DurationVar(&cfg.settle, "startup-settle", 10*time.Second, "with -startup-tokens: after seeding, sync the file systems and wait this `duration` before the first start, so the seeding's writes are not still going to disk")
	fs.StringVar(&cfg.baseline, "startup-baseline", "", "with -startup-tokens: a tokend `binary` (say, built from an older commit) started on the same data in alternating rounds with this build's in-process start; its time is the load time it logs (\"tokens loaded\", took)")
	fs.StringVar(&cfg.serverLog, "server-log", "discard", "in-process server log: `mode` discard (formatted at info level, then dropped), off, or stderr")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "`directory` for the in-process server's files (default: a temporary directory removed at exit)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write CPU profiles (client and in-process server together) to files named `prefix`-<call>-<round>.pprof, one per measurement, or prefix-startup.pprof")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write a heap profile to `file` while the server runs: after the rounds, or after the first start with -startup-tokens")
	fs.BoolVar(&cfg.verbose, "v", false, "print every measurement as it ends")
	fs.IntVar(&cfg.propagation, "propagation", 0, "with -etcd-endpoints: measure only how fast `changes` made on one of two in-process replicas reach the other")
	fs.StringVar(&cfg.etcdEndpoints, "etcd-endpoints", "", "run the in-process server on the etcd at these client `URLs` (comma-separated) instead of a bbolt file, under a fresh prefix")
	fs.StringVar(&cfg.peerURL, "peer-url", "", "also measure GET on this loopback `URL` of another service (say, Strapi's /_health), with the REST client, in the same rounds: gRPC and REST introspection are divided by it")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case cfg.tokens < 1:
		return cfg, errors.New("-tokens must be at least 1")
	case cfg.probeTokens < 1:
		return cfg, errors.New("-probe-tokens must be at least 1")
	case cfg.conns < 1 || cfg.concurrency < 1 || cfg.rounds < 1:
		return cfg, errors.New("-conns, -concurrency and -rounds must be at least 1")
	case cfg.duration <= 0 || cfg.warmup < 0:
		return cfg, errors.New("-duration must be positive and -warmup not negative")
	case cfg.baseline != "" && cfg.startupTokens == 0:
		return cfg, errors.New("-startup-baseline needs -startup-tokens")
	case cfg.creates < 0 || cfg.startupTokens < 0:
		return cfg, errors.New("-creates and -startup-tokens must not be negative")
	case cfg.serverLog != "discard" && cfg.serverLog != "off" && cfg.serverLog != "stderr":
		return cfg, fmt.Errorf("-server-log %q: want discard, off or stderr", cfg.serverLog)
	case cfg.propagation < 0 || cfg.propagation > 0 && cfg.etcdEndpoints == "":
		return cfg, errors.New("-propagation needs -etcd-endpoints and a positive count")
	case cfg.etcdEndpoints != "" && (cfg.seedDirect || cfg.startupTokens > 0 || cfg.remote()):
		return cfg, errors.New("-etcd-endpoints runs an in-process server seeded through the API: not with -seed-direct, -startup-tokens or a running server")
	}
	if cfg.remote() {
		switch {
		case cfg.grpcAddr == "" || cfg.httpAddr == "":
			return cfg, errors.New("a running server needs both -grpc-addr and -http-addr")
		case cfg.adminToken == "":
			return cfg, errors.New("a running server needs -admin-token (or TOKEND_BENCH_ADMIN_TOKEN)")
		case cfg.seedDirect || cfg.startupTokens > 0:
			return cfg, errors.New("-seed-direct and -startup-tokens start their own server: drop -grpc-addr and -http-addr")
		}
		for _, a := range []string{cfg.grpcAddr, cfg.httpAddr} {
			if err := checkLoopback(a); err != nil {
				return cfg, err
			}
		}
	}
	if cfg.peerURL != "" {
		u, err := url.Parse(cfg.peerURL)
		if err != nil || u.Scheme != "http" {
			return cfg, fmt.Errorf("-peer-url %q: want an http:// URL", cfg.peerURL)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		if err := checkLoopback(host); err != nil {
			return cfg, fmt.Errorf("-peer-url: %w", err)
		}
	}
	if cfg.seedDirect {
		cfg.probeTokens = min(cfg.probeTokens, cfg.tokens)
	}
	return cfg, nil
}

// serverLogger returns the in-process server's logger for the -server-log
// mode. "discard" keeps the cost of formatting one line per request, as a
// production server at the default level pays, without the write.
func serverLogger(mode string, stderr io.Writer) *slog.Logger {
	switch mode {
	case "off":
		return slog.New(slog.DiscardHandler)
	case "stderr":
		return slog.New(slog.NewTextHandler(stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startCPUProfile starts a CPU profile written to prefix-name.pprof, unless
// prefix is empty, and returns the function that stops it.
func startCPUProfile(prefix, name string) (stop func() error, err error) {
	if prefix == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(prefix + "-" + name + ".pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// writeHeapProfile writes a heap profile to path, if not empty, after a
// garbage collection so that it shows live memory.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
