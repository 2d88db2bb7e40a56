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

const usage = `tokend: a central API-token service.

Usage:
  tokend serve [flags]   run the gRPC and HTTP servers (tokend serve -help lists the flags)
  tokend help            show this text
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tokend:", err)
		os.Exit(2)
	}
}

// run executes the command line args; getenv supplies the TOKEND_* twins.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		cfg, shutdownTimeout, err := parseServeFlags(args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, shutdownTimeout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// serve runs tokend until ctx is done (SIGINT or SIGTERM), then shuts down
// gracefully.
func serve(ctx context.Context, cfg server.Config, shutdownTimeout time.Duration) error {
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case serveErr = <-srv.Err():
		cfg.Logger.Error("server stopped", slog.Any("error", serveErr))
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
func parseServeFlags(args []string, getenv func(string) string, stderr io.Writer) (server.Config, time.Duration, error) {
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
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", server.DefaultGRPCAddr, "gRPC listen address (`host:port`; :0 picks a free port)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", server.DefaultHTTPAddr, "HTTP listen address for REST, health, metrics and OpenAPI (`host:port`)")
	fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "`directory` of the database (and, by default, the hash key); created with mode 0700")
	fs.StringVar(&cfg.RootTokenFile, "root-token-file", "", "on first start, write the root admin token to this `file` (mode 0600) instead of printing it to stderr")
	fs.StringVar(&cfg.HashKeyFile, "hash-key-file", "", "`file` holding the hex HMAC key of secrets (default <data-dir>/hash.key, generated on first start; must not be readable by others)")
	fs.StringVar(&lifespans, "lifespans", lifespans, "allowed token durations, comma-separated (`list` of e.g. 7d, 12h)")
	fs.StringVar(&cfg.APIPrefix, "api-prefix", service.DefaultAPIPrefix, "`prefix` of API token secrets")
	fs.StringVar(&cfg.AdminPrefix, "admin-prefix", service.DefaultAdminPrefix, "`prefix` of admin token secrets")
	fs.DurationVar(&flushInterval, "flush-interval", flushInterval, "how often last-used times are written to the store (`duration`)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest REST request body accepted (`bytes`)")
	fs.DurationVar(&cfg.AuditRetention, "audit-retention", server.DefaultAuditRetention, "how long audit events are kept (`duration`; negative keeps them forever)")
	fs.IntVar(&cfg.AuthFailureLimit, "auth-failure-limit", service.DefaultAuthFailureLimit, "failed authentications per minute one client address may make; further failures get 429/ResourceExhausted until the minute ends, valid credentials are still served (`count`; negative disables)")
	fs.StringVar(&expiryWarnings, "expiry-warnings", expiryWarnings, "times before a token's expiry at which watchers get an EXPIRING event, comma-separated (`list` of durations; \"none\" for none)")
	fs.DurationVar(&cfg.WatchHeartbeat, "watch-heartbeat", service.DefaultWatchHeartbeat, "interval of the heartbeats on token watches (`duration`)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate `file`: serve both ports over TLS (with -tls-key)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", "", "PEM CA `file`: require gRPC clients to present a certificate it signed (mutual TLS)")
	fs.DurationVar(&shutdownTimeout, "shutdown-timeout", shutdownTimeout, "how long in-flight requests may finish on SIGINT/SIGTERM (`duration`)")
	fs.StringVar(&logLevel, "log-level", logLevel, "`level`: debug, info, warn or error (info logs one line per request)")
	fs.StringVar(&logFormat, "log-format", logFormat, "`format`: text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tokend serve [flags]\n\nEach flag can also be set with the environment variable named in brackets.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, u := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  -%s %s  [%s]\n    \t%s", f.Name, name, envName(f.Name), u)
			if f.DefValue != "" {
				fmt.Fprintf(stderr, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
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
	if envErr != nil {
		return cfg, 0, envErr
	}
	var err error
	if cfg.Lifespans, err = parseLifespans(lifespans); err != nil {
		return cfg, 0, err
	}
	if cfg.ExpiryWarnings, err = parseExpiryWarnings(expiryWarnings); err != nil {
		return cfg, 0, err
	}
	if cfg.WatchHeartbeat <= 0 {
		return cfg, 0, errors.New("-watch-heartbeat must be positive")
	}
	cfg.FlushInterval = flushInterval
	if flushInterval <= 0 {
		return cfg, 0, errors.New("-flush-interval must be positive")
	}
	if cfg.Logger, err = newLogger(stderr, logLevel, logFormat); err != nil {
		return cfg, 0, err
	}
	cfg.Stderr = stderr
	return cfg, shutdownTimeout, nil
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
