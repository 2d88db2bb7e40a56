package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
)

const day = 24 * time.Hour

func TestParseLifespans(t *testing.T) {
	tests := []struct {
		name, in string
		want     []time.Duration // nil: an error
	}{
		{"Default", "7d,30d,90d", []time.Duration{7 * day, 30 * day, 90 * day}},
		{"Spaces", " 7d , 1h ,", []time.Duration{7 * day, time.Hour}},
		{"GoDurations", "12h,90m,1h30m", []time.Duration{12 * time.Hour, 90 * time.Minute, 90 * time.Minute}},
		{"OneDay", "1d", []time.Duration{day}},
		{"Seconds", "2s", []time.Duration{2 * time.Second}},
		{"Empty", "", nil},
		{"OnlyCommas", " , ,", nil},
		{"ZeroDays", "0d", nil},
		{"NegativeDays", "-1d", nil},
		{"FractionalDays", "1.5d", nil},
		{"NotANumber", "xd", nil},
		{"BareD", "d", nil},
		{"ZeroDuration", "0s", nil},
		{"NegativeDuration", "-5m", nil},
		{"NoUnit", "7", nil},
		{"UpperCaseD", "7D", nil},
		{"OneBadAmongGood", "7d,soon,30d", nil},
		// 106752 days is past the largest time.Duration (about 106751
		// days): it must be refused, not wrapped around.
		{"DaysOverflow", "106752d", nil},
		{"DaysOverflowWrapsPositive", "213504d", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLifespans(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("parseLifespans(%q) = %v, want an error", tt.in, got)
				}
				if !strings.HasPrefix(err.Error(), "-lifespans: ") {
					t.Errorf("error %q does not name the flag", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("parseLifespans(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"grpc-addr":        "TOKEND_GRPC_ADDR",
		"http-addr":        "TOKEND_HTTP_ADDR",
		"data-dir":         "TOKEND_DATA_DIR",
		"root-token-file":  "TOKEND_ROOT_TOKEN_FILE",
		"hash-key-file":    "TOKEND_HASH_KEY_FILE",
		"lifespans":        "TOKEND_LIFESPANS",
		"flush-interval":   "TOKEND_FLUSH_INTERVAL",
		"log-level":        "TOKEND_LOG_LEVEL",
		"max-body-bytes":   "TOKEND_MAX_BODY_BYTES",
		"shutdown-timeout": "TOKEND_SHUTDOWN_TIMEOUT",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// allFlags is every flag of `tokend serve`.
var allFlags = []string{
	"grpc-addr", "http-addr", "data-dir", "root-token-file", "hash-key-file", "lifespans",
	"api-prefix", "admin-prefix", "flush-interval", "max-body-bytes", "shutdown-timeout",
	"log-level", "log-format", "audit-retention", "auth-failure-limit", "auth-routes", "max-actions",
	"tls-cert", "tls-key", "tls-client-ca", "tls-client-auth",
	"http-read-timeout", "http-write-timeout", "grpc-max-streams", "grpc-max-idle",
	"store", "etcd-endpoints", "etcd-prefix", "etcd-dial-timeout", "etcd-ca", "etcd-cert", "etcd-key", "max-staleness",
	"expiry-warnings", "watch-heartbeat", "watch-buffer",
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseServeFlagsDefaults(t *testing.T) {
	var stderr bytes.Buffer
	cfg, shutdownTimeout, _, err := parseServeFlags(nil, env(), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback unless configured: reaching tokend from elsewhere is a choice.
	if cfg.GRPCAddr != "127.0.0.1:9090" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.DataDir != "./data" {
		t.Errorf("addresses and data dir: %q %q %q", cfg.GRPCAddr, cfg.HTTPAddr, cfg.DataDir)
	}
	if cfg.HTTPReadTimeout != server.DefaultHTTPReadTimeout || cfg.HTTPWriteTimeout != server.DefaultHTTPWriteTimeout ||
		cfg.GRPCMaxStreams != server.DefaultGRPCMaxStreams || cfg.GRPCMaxConnectionIdle != server.DefaultGRPCMaxConnectionIdle {
		t.Errorf("limits: read %v write %v streams %d idle %v", cfg.HTTPReadTimeout, cfg.HTTPWriteTimeout, cfg.GRPCMaxStreams, cfg.GRPCMaxConnectionIdle)
	}
	if cfg.TLSClientAuth != "" {
		t.Errorf("client auth policy %q without a client CA", cfg.TLSClientAuth)
	}
	if cfg.RootTokenFile != "" || cfg.HashKeyFile != "" {
		t.Errorf("root token file %q, hash key file %q: want both empty (print; <data-dir>/hash.key)", cfg.RootTokenFile, cfg.HashKeyFile)
	}
	if !slices.Equal(cfg.Lifespans, service.DefaultLifespans) {
		t.Errorf("lifespans %v, want %v", cfg.Lifespans, service.DefaultLifespans)
	}
	if cfg.APIPrefix != "tkd" || cfg.AdminPrefix != "tkda" {
		t.Errorf("prefixes %q %q", cfg.APIPrefix, cfg.AdminPrefix)
	}
	if cfg.FlushInterval != time.Minute {
		t.Errorf("flush interval %v, want a minute: last-use times may lag the store by at most that", cfg.FlushInterval)
	}
	if cfg.MaxBodyBytes != server.DefaultMaxBodyBytes {
		t.Errorf("max body %d", cfg.MaxBodyBytes)
	}
	if shutdownTimeout <= 0 {
		t.Errorf("shutdown timeout %v", shutdownTimeout)
	}
	if cfg.Logger == nil || cfg.Stderr != &stderr {
		t.Errorf("logger %v, stderr %v: want both set, stderr the given writer", cfg.Logger, cfg.Stderr)
	}
	if stderr.Len() != 0 {
		t.Errorf("parsing printed %q", stderr.String())
	}
	if want := []time.Duration{168 * time.Hour, 24 * time.Hour}; !slices.Equal(cfg.ExpiryWarnings, want) || cfg.WatchHeartbeat != service.DefaultWatchHeartbeat {
		t.Errorf("expiry warnings %v, watch heartbeat %v; want %v, %v", cfg.ExpiryWarnings, cfg.WatchHeartbeat, want, service.DefaultWatchHeartbeat)
	}
	if cfg, _, _, err := parseServeFlags([]string{"-expiry-warnings", "none"}, env(), &stderr); err != nil || cfg.ExpiryWarnings == nil || len(cfg.ExpiryWarnings) != 0 {
		t.Errorf("-expiry-warnings none: %v, %v; want an empty, non-nil list", cfg.ExpiryWarnings, err)
	}
	if cfg.WatchBuffer != service.DefaultWatchBuffer {
		t.Errorf("watch buffer %d, want %d", cfg.WatchBuffer, service.DefaultWatchBuffer)
	}
	if cfg, _, _, err := parseServeFlags(nil, env("TOKEND_WATCH_BUFFER", "64"), &stderr); err != nil || cfg.WatchBuffer != 64 {
		t.Errorf("TOKEND_WATCH_BUFFER=64: watch buffer %d, %v", cfg.WatchBuffer, err)
	}
}

func TestParseServeFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   []string
		check func(t *testing.T, cfg server.Config, shutdownTimeout time.Duration)
	}{
		{"Flags", []string{
			"-grpc-addr", "127.0.0.1:1", "-http-addr=127.0.0.1:2", "-data-dir", "/d", "-root-token-file", "/r",
			"-hash-key-file", "/k", "-lifespans", "1d,12h", "-api-prefix", "abc", "-admin-prefix", "abcadm",
			"-flush-interval", "5s", "-max-body-bytes", "99", "-shutdown-timeout", "3s",
		}, nil, func(t *testing.T, cfg server.Config, sd time.Duration) {
			want := server.Config{
				GRPCAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", DataDir: "/d", RootTokenFile: "/r", HashKeyFile: "/k",
				APIPrefix: "abc", AdminPrefix: "abcadm", FlushInterval: 5 * time.Second, MaxBodyBytes: 99,
			}
			checkConfig(t, cfg, want)
			if !slices.Equal(cfg.Lifespans, []time.Duration{day, 12 * time.Hour}) {
				t.Errorf("lifespans %v", cfg.Lifespans)
			}
			if sd != 3*time.Second {
				t.Errorf("shutdown timeout %v", sd)
			}
		}},
		{"DoubleDash", []string{"--http-addr", "127.0.0.1:2"}, nil, func(t *testing.T, cfg server.Config, _ time.Duration) {
			if cfg.HTTPAddr != "127.0.0.1:2" {
				t.Errorf("http addr %q", cfg.HTTPAddr)
			}
		}},
		{"EnvTwins", nil, []string{
			"TOKEND_GRPC_ADDR", "127.0.0.1:1", "TOKEND_HTTP_ADDR", "127.0.0.1:2", "TOKEND_DATA_DIR", "/d",
			"TOKEND_ROOT_TOKEN_FILE", "/r", "TOKEND_HASH_KEY_FILE", "/k", "TOKEND_LIFESPANS", "1d",
			"TOKEND_API_PREFIX", "abc", "TOKEND_ADMIN_PREFIX", "abcadm", "TOKEND_FLUSH_INTERVAL", "5s",
			"TOKEND_MAX_BODY_BYTES", "99", "TOKEND_SHUTDOWN_TIMEOUT", "3s", "TOKEND_LOG_LEVEL", "debug", "TOKEND_LOG_FORMAT", "json",
		}, func(t *testing.T, cfg server.Config, sd time.Duration) {
			want := server.Config{
				GRPCAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", DataDir: "/d", RootTokenFile: "/r", HashKeyFile: "/k",
				APIPrefix: "abc", AdminPrefix: "abcadm", FlushInterval: 5 * time.Second, MaxBodyBytes: 99,
			}
			checkConfig(t, cfg, want)
			if !slices.Equal(cfg.Lifespans, []time.Duration{day}) || sd != 3*time.Second {
				t.Errorf("lifespans %v, shutdown timeout %v", cfg.Lifespans, sd)
			}
			if !cfg.Logger.Enabled(t.Context(), -4) {
				t.Errorf("TOKEND_LOG_LEVEL=debug: debug is not enabled")
			}
		}},
		{"FlagBeatsEnv", []string{"-http-addr", "127.0.0.1:2", "-flush-interval", "1s"}, []string{
			"TOKEND_HTTP_ADDR", "127.0.0.1:9", "TOKEND_FLUSH_INTERVAL", "9s", "TOKEND_GRPC_ADDR", "127.0.0.1:1",
		}, func(t *testing.T, cfg server.Config, _ time.Duration) {
			if cfg.HTTPAddr != "127.0.0.1:2" || cfg.FlushInterval != time.Second {
				t.Errorf("flag lost to its env twin: http %q, flush %v", cfg.HTTPAddr, cfg.FlushInterval)
			}
			if cfg.GRPCAddr != "127.0.0.1:1" {
				t.Errorf("env twin of an unset flag ignored: grpc %q", cfg.GRPCAddr)
			}
		}},
		{"FlagEqualToDefaultBeatsEnv", []string{"-data-dir", "./data"}, []string{"TOKEND_DATA_DIR", "/elsewhere"},
			func(t *testing.T, cfg server.Config, _ time.Duration) {
				if cfg.DataDir != "./data" {
					t.Errorf("data dir %q: a flag given with its default value must still beat the env", cfg.DataDir)
				}
			}},
		{"EmptyEnvIgnored", nil, []string{"TOKEND_HTTP_ADDR", ""}, func(t *testing.T, cfg server.Config, _ time.Duration) {
			if cfg.HTTPAddr != server.DefaultHTTPAddr {
				t.Errorf("http addr %q", cfg.HTTPAddr)
			}
		}},
		{"UnrelatedEnvIgnored", nil, []string{"HTTP_ADDR", "x", "TOKEND_NOPE", "x"}, func(t *testing.T, cfg server.Config, _ time.Duration) {
			if cfg.HTTPAddr != server.DefaultHTTPAddr {
				t.Errorf("http addr %q", cfg.HTTPAddr)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, sd, _, err := parseServeFlags(tt.args, env(tt.env...), &stderr)
			if err != nil {
				t.Fatalf("parseServeFlags: %v (stderr %q)", err, stderr.String())
			}
			tt.check(t, cfg, sd)
		})
	}
}

// checkConfig compares the plain fields of two configurations.
func checkConfig(t *testing.T, got, want server.Config) {
	t.Helper()
	got.Lifespans, got.Logger, got.Stderr = nil, nil, nil
	if !equalConfig(got, want) {
		t.Errorf("config\n got %+v\nwant %+v", got, want)
	}
}

func equalConfig(a, b server.Config) bool {
	return a.GRPCAddr == b.GRPCAddr && a.HTTPAddr == b.HTTPAddr && a.DataDir == b.DataDir &&
		a.RootTokenFile == b.RootTokenFile && a.HashKeyFile == b.HashKeyFile && a.APIPrefix == b.APIPrefix &&
		a.AdminPrefix == b.AdminPrefix && a.FlushInterval == b.FlushInterval && a.MaxBodyBytes == b.MaxBodyBytes
}

func TestParseServeFlagsErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		mention string // the error (or the usage output) names this
	}{
		{"UnknownFlag", []string{"-nope"}, nil, "nope"},
		{"PositionalArgument", []string{"extra"}, nil, "extra"},
		{"ArgumentAfterFlags", []string{"-data-dir", "/d", "extra"}, nil, "extra"},
		{"BadFlushInterval", []string{"-flush-interval", "soon"}, nil, "flush-interval"},
		{"ZeroFlushInterval", []string{"-flush-interval", "0s"}, nil, "flush-interval"},
		{"NegativeFlushInterval", []string{"-flush-interval", "-1s"}, nil, "flush-interval"},
		{"BadLifespans", []string{"-lifespans", "forever"}, nil, "lifespans"},
		{"BadLogLevel", []string{"-log-level", "loud"}, nil, "log-level"},
		{"BadLogFormat", []string{"-log-format", "xml"}, nil, "log-format"},
		{"BadMaxBody", []string{"-max-body-bytes", "lots"}, nil, "max-body-bytes"},
		{"BadEnvDuration", nil, []string{"TOKEND_FLUSH_INTERVAL", "soon"}, "TOKEND_FLUSH_INTERVAL"},
		{"BadEnvNumber", nil, []string{"TOKEND_MAX_BODY_BYTES", "lots"}, "TOKEND_MAX_BODY_BYTES"},
		{"BadEnvLifespans", nil, []string{"TOKEND_LIFESPANS", "0d"}, "lifespans"},
		{"BadEnvLogFormat", nil, []string{"TOKEND_LOG_FORMAT", "xml"}, "log-format"},
		{"ZeroReadTimeout", []string{"-http-read-timeout", "0s"}, nil, "http-read-timeout"},
		{"NegativeWriteTimeout", nil, []string{"TOKEND_HTTP_WRITE_TIMEOUT", "-1s"}, "http-write-timeout"},
		{"ZeroMaxStreams", []string{"-grpc-max-streams", "0"}, nil, "grpc-max-streams"},
		{"ZeroMaxIdle", []string{"-grpc-max-idle", "0s"}, nil, "grpc-max-idle"},
		{"BadExpiryWarnings", []string{"-expiry-warnings", "7d"}, nil, "expiry-warnings"},
		{"NegativeExpiryWarning", []string{"-expiry-warnings", "168h,-1h"}, nil, "expiry-warnings"},
		{"ZeroWatchHeartbeat", []string{"-watch-heartbeat", "0s"}, nil, "watch-heartbeat"},
		{"ZeroWatchBuffer", nil, []string{"TOKEND_WATCH_BUFFER", "0"}, "watch-buffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, _, _, err := parseServeFlags(tt.args, env(tt.env...), &stderr)
			if err == nil {
				t.Fatalf("parseServeFlags(%q) succeeded", tt.args)
			}
			if !strings.Contains(err.Error()+stderr.String(), tt.mention) {
				t.Errorf("error %q (stderr %q) does not mention %q", err, stderr.String(), tt.mention)
			}
		})
	}
}

func TestParseServeFlagsHelp(t *testing.T) {
	for _, arg := range []string{"-help", "-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var stderr bytes.Buffer
			_, _, _, err := parseServeFlags([]string{arg}, env(), &stderr)
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("err = %v, want flag.ErrHelp", err)
			}
			checkHelp(t, stderr.String())
		})
	}
}

// checkHelp checks that a usage text lists every flag with its env twin.
func checkHelp(t *testing.T, out string) {
	t.Helper()
	flagLine := regexp.MustCompile(`^  -([a-z0-9-]+) `)
	listed := 0
	for _, l := range strings.Split(out, "\n") {
		m := flagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		listed++
		if !strings.Contains(l, "["+envName(m[1])+"]") {
			t.Errorf("usage line of -%s lacks [%s]: %q", m[1], envName(m[1]), l)
		}
	}
	if listed != len(allFlags) {
		t.Errorf("usage lists %d flags, want the %d of allFlags", listed, len(allFlags))
	}
	for _, f := range allFlags {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "-"+f+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("usage does not list -%s:\n%s", f, out)
			continue
		}
		if !strings.Contains(line, "["+envName(f)+"]") {
			t.Errorf("usage line of -%s lacks [%s]: %q", f, envName(f), line)
		}
	}
}

func TestParseServeFlagsLogFormat(t *testing.T) {
	var stderr bytes.Buffer
	cfg, _, _, err := parseServeFlags([]string{"-log-format", "json", "-log-level", "warn"}, env(), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger.Info("hidden")
	cfg.Logger.Warn("shown", "k", "v")
	var line map[string]any
	if err := json.Unmarshal(stderr.Bytes(), &line); err != nil {
		t.Fatalf("log output is not one JSON line: %q", stderr.String())
	}
	if line["msg"] != "shown" || line["k"] != "v" {
		t.Errorf("log line %v", line)
	}
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout bool   // the text goes to stdout (help asked for) rather than stderr (an error)
		mention  string // the text contains
	}{
		{"NoCommand", nil, 2, false, "tokend serve"},
		{"UnknownCommand", []string{"frobnicate"}, 2, false, `unknown command "frobnicate"`},
		{"Help", []string{"help"}, 0, true, "tokend serve"},
		{"DashHelp", []string{"-help"}, 0, true, "tokend serve"},
		{"DoubleDashHelp", []string{"--help"}, 0, true, "tokend serve"},
		// The offline commands refuse a wrong command line, as serve
		// does, with 2, before touching any store.
		{"MigrateWithoutEndpoints", []string{"migrate", "-data-dir", "/nonexistent"}, 2, false, "-etcd-endpoints"},
		{"MigrateCertWithoutKey", []string{"migrate", "-etcd-endpoints", "http://127.0.0.1:1", "-etcd-cert", "c.pem"}, 2, false, "-etcd-key"},
		{"MigrateNoDialTimeout", []string{"migrate", "-etcd-endpoints", "http://127.0.0.1:1", "-etcd-dial-timeout", "0s"}, 2, false, "-etcd-dial-timeout"},
		{"MigrateUnknownFlag", []string{"migrate", "-frobnicate"}, 2, false, "frobnicate"},
		{"RecoverRootArgument", []string{"recover-root", "extra"}, 2, false, "unexpected arguments"},
		{"RecoverRootUnknownFlag", []string{"recover-root", "-frobnicate"}, 2, false, "frobnicate"},
		{"RecoverRootHelp", []string{"recover-root", "-help"}, 0, false, "TOKEND_DATA_DIR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, env(), strings.NewReader(""), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("run(%q) exits %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
			}
			out := stderr.String()
			if tt.inStdout {
				out = stdout.String()
			}
			if !strings.Contains(out, tt.mention) {
				t.Errorf("run(%q) does not say %q: stdout %q, stderr %q", tt.args, tt.mention, stdout.String(), stderr.String())
			}
		})
	}
}

// TestMigrateRefusesWithoutDatabase: a data directory without a database is
// refused before anything is opened, and no database is left in it.
func TestMigrateRefusesWithoutDatabase(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"migrate", "-data-dir", dir, "-etcd-endpoints", "http://127.0.0.1:1"}, env(), strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no database to migrate") {
		t.Errorf("migrate from an empty directory exits %d: %s", code, stderr.String())
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("migrate left %v in the data directory (%v)", entries, err)
	}
}
