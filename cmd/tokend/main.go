package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// serve runs tokend until ctx is done (SIGINT or SIGTERM), then shuts down
// gracefully. SIGHUP reloads the forward-auth route table; a bad file keeps
// the table in use and logs why.
func serve(ctx context.Context, cfg server.Config, shutdownTimeout time.Duration) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	var serveErr error
wait:
	for {
		select {
		case <-ctx.Done():
			cfg.Logger.Info("shutting down")
			break wait
		case serveErr = <-srv.Err():
			cfg.Logger.Error("server stopped", slog.Any("error", serveErr))
			break wait
		case <-hup:
			if err := srv.ReloadAuthRoutes(); err != nil {
				cfg.Logger.Error("SIGHUP", slog.Any("error", err))
			}
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return errors.Join(serveErr, err)
	}
	cfg.Logger.Info("stopped")
	return serveErr
}

// parseServeFlags turns flags and their TOKEND_* environment twins into a
// server configuration. A flag on the command line wins over its twin.
func parseServeFlags(args []string, getenv func(string) string, stderr io.Writer) (server.Config, time.Duration, *storeFlags, error) {
	fs := flag.NewFlagSet("tokend serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg             server.Config
		lifespans       = "7d,30d,90d"
		flushInterval   = service.DefaultFlushInterval
		shutdownTimeout = 30 * time.Second
		logLevel        = "info"
		logFormat       = "text"
		expiryWarnings  = "168h,24h"
	)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", server.DefaultGRPCAddr, "gRPC listen address (`host:port`; :0 picks a free port; loopback by default, and a warning when another address is served without TLS)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", server.DefaultHTTPAddr, "HTTP listen address for REST, the console, health, metrics and OpenAPI (`host:port`; loopback by default)")
	fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "`directory` of the database (and, by default, the hash key); created with mode 0700")
	fs.StringVar(&cfg.RootTokenFile, "root-token-file", "", "on first start, write the root admin token to this `file` (mode 0600) instead of printing it to stderr")
	fs.StringVar(&cfg.HashKeyFile, "hash-key-file", "", "`file` holding the hex HMAC keys of secrets, newest first (default <data-dir>/hash.key, generated only for a new, empty database; must not be readable by others; start is refused if the database holds tokens and the file is missing or holds none of their keys)")
	fs.StringVar(&lifespans, "lifespans", lifespans, "allowed token durations, comma-separated (`list` of e.g. 7d, 12h)")
	fs.StringVar(&cfg.APIPrefix, "api-prefix", service.DefaultAPIPrefix, "`prefix` of API token secrets")
	fs.StringVar(&cfg.AdminPrefix, "admin-prefix", service.DefaultAdminPrefix, "`prefix` of admin token secrets")
	fs.DurationVar(&flushInterval, "flush-interval", flushInterval, "how often last-used times are written to the store (`duration`)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest REST request body accepted (`bytes`)")
	fs.DurationVar(&cfg.AuditRetention, "audit-retention", server.DefaultAuditRetention, "how long audit events are kept (`duration`; negative keeps them forever)")
	fs.IntVar(&cfg.AuthFailureLimit, "auth-failure-limit", service.DefaultAuthFailureLimit, "failed authentications per minute one client address may make; further failures get 429/ResourceExhausted (401 on /v1/auth) until the minute ends, valid credentials are still served (`count`; negative disables)")
	fs.StringVar(&cfg.AuthRoutesFile, "auth-routes", "", "YAML route table `file` of forward auth (/v1/auth), reloaded on SIGHUP; without it /v1/auth denies every request")
	fs.IntVar(&cfg.MaxActions, "max-actions", service.DefaultMaxActions, "how many actions the API action catalog may hold; registering more is refused (`count`)")
	fs.StringVar(&expiryWarnings, "expiry-warnings", expiryWarnings, "times before a token's expiry at which watchers get an EXPIRING event, comma-separated (`list` of durations; \"none\" for none)")
	fs.DurationVar(&cfg.WatchHeartbeat, "watch-heartbeat", service.DefaultWatchHeartbeat, "interval of the heartbeats on token watches (`duration`)")
	fs.IntVar(&cfg.WatchBuffer, "watch-buffer", service.DefaultWatchBuffer, "how many recent watch events are kept for watchers that reconnect; one resuming from further back gets a RESET (`count`)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate `file`: serve both ports over TLS (with -tls-key)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", "", "PEM CA `file`: verify client certificates against it on both ports (mutual TLS; see -tls-client-auth)")
	fs.StringVar(&cfg.TLSClientAuth, "tls-client-auth", server.ClientAuthRequire, "with -tls-client-ca, `policy` on both ports: require (a certificate the CA signed) or verify-if-given (no certificate is let in, a bad one is refused)")
	fs.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", server.DefaultHTTPReadTimeout, "longest time a REST request body may take to arrive, per request (`duration`)")
	fs.DurationVar(&cfg.HTTPWriteTimeout, "http-write-timeout", server.DefaultHTTPWriteTimeout, "longest time a REST answer may take to be written, per request (`duration`)")
	fs.IntVar(&cfg.GRPCMaxStreams, "grpc-max-streams", server.DefaultGRPCMaxStreams, "most gRPC calls in flight on one connection (`count`)")
	fs.DurationVar(&cfg.GRPCMaxConnectionIdle, "grpc-max-idle", server.DefaultGRPCMaxConnectionIdle, "close a gRPC connection with no call in flight for this long (`duration`)")
	fs.DurationVar(&shutdownTimeout, "shutdown-timeout", shutdownTimeout, "how long in-flight requests may finish on SIGINT/SIGTERM (`duration`)")
	fs.StringVar(&logLevel, "log-level", logLevel, "`level`: debug, info, warn or error (info logs one line per request)")
	fs.StringVar(&logFormat, "log-format", logFormat, "`format`: text or json")
	store := addStoreFlags(fs)
	fs.DurationVar(&cfg.MaxStaleness, "max-staleness", service.DefaultMaxStaleness, "with -store etcd: how long introspection answers from memory while etcd is unreachable before failing closed with 503/Unavailable (`duration`)")
	fs.Usage = flagUsage(fs, stderr, "Usage: tokend serve [flags]")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return cfg, 0, nil, err
	}
	var err error
	if cfg.Lifespans, err = parseLifespans(lifespans); err != nil {
		return cfg, 0, nil, err
	}
	if cfg.ExpiryWarnings, err = parseExpiryWarnings(expiryWarnings); err != nil {
		return cfg, 0, nil, err
	}
	if cfg.WatchHeartbeat <= 0 {
		return cfg, 0, nil, errors.New("-watch-heartbeat must be positive")
	}
	if cfg.WatchBuffer <= 0 {
		return cfg, 0, nil, errors.New("-watch-buffer must be positive")
	}
	cfg.FlushInterval = flushInterval
	if flushInterval <= 0 {
		return cfg, 0, nil, errors.New("-flush-interval must be positive")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"http-read-timeout", cfg.HTTPReadTimeout}, {"http-write-timeout", cfg.HTTPWriteTimeout}, {"grpc-max-idle", cfg.GRPCMaxConnectionIdle}} {
		if d.v <= 0 {
			return cfg, 0, nil, fmt.Errorf("-%s must be positive", d.name)
		}
	}
	if cfg.GRPCMaxStreams <= 0 {
		return cfg, 0, nil, errors.New("-grpc-max-streams must be positive")
	}
	policySet := false
	fs.Visit(func(f *flag.Flag) { policySet = policySet || f.Name == "tls-client-auth" })
	if cfg.TLSClientCAFile == "" && !policySet {
		// The policy only means something with a CA: its default must
		// not make a plain -tls-cert setup look misconfigured, while a
		// policy given without a CA is refused by the server.
		cfg.TLSClientAuth = ""
	}
	if cfg.MaxActions <= 0 {
		return cfg, 0, nil, errors.New("-max-actions must be positive")
	}
	if cfg.Logger, err = newLogger(stderr, logLevel, logFormat); err != nil {
		return cfg, 0, nil, err
	}
	cfg.Stderr = stderr
	if err := store.check(cfg.HashKeyFile); err != nil {
		return cfg, 0, nil, err
	}
	return cfg, shutdownTimeout, store, nil
}

// flagUsage returns a usage function that prints header and every flag of
// fs with its environment twin.
func flagUsage(fs *flag.FlagSet, stderr io.Writer, header string) func() {
	return func() {
		fmt.Fprintf(stderr, "%s\n\nEach flag can also be set with the environment variable named in brackets.\n\n", header)
		fs.VisitAll(func(f *flag.Flag) {
			name, u := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  -%s %s  [%s]\n    \t%s", f.Name, name, envName(f.Name), u)
			if f.DefValue != "" {
				fmt.Fprintf(stderr, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
}

// parseWithEnv parses args into fs, refusing positional arguments, then
// sets each flag not given on the command line from its TOKEND_* twin: a
// flag on the command line wins over its twin.
func parseWithEnv(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && !set[f.Name] && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: %w", envName(f.Name), err)
			}
		}
	})
	return envErr
}

// envName is the environment twin of a flag: grpc-addr → TOKEND_GRPC_ADDR.
func envName(flagName string) string {
	return "TOKEND_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// maxLifespanDays keeps lifespans far from time.Duration's limit (~292 years).
const maxLifespanDays = 100 * 365

// parseLifespans reads "7d,30d,90d": whole days ("Nd") or Go durations.
func parseLifespans(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var d time.Duration
		if days, ok := strings.CutSuffix(part, "d"); ok {
			n, err := strconv.Atoi(days)
			if err != nil || n <= 0 || n > maxLifespanDays {
				return nil, fmt.Errorf("-lifespans: %q is not a number of days from 1 to %d", part, maxLifespanDays)
			}
			d = time.Duration(n) * 24 * time.Hour
		} else {
			var err error
			if d, err = time.ParseDuration(part); err != nil || d <= 0 {
				return nil, fmt.Errorf("-lifespans: %q is not a positive duration", part)
			}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("-lifespans: list at least one duration")
	}
	return out, nil
}

// parseExpiryWarnings reads "168h,24h" (Go durations), or "none".
func parseExpiryWarnings(s string) ([]time.Duration, error) {
	out := []time.Duration{} // not nil: an empty list means no warnings
	if strings.TrimSpace(s) == "none" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("-expiry-warnings: %q is not a positive duration (write e.g. 168h,24h, or none)", part)
		}
		out = append(out, d)
	}
	return out, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is not text or json", format)
}
