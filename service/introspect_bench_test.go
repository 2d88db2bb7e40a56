package service

// Benchmarks of the introspection hot path, whose budget is ≤ 1 µs and ≤ 2
// allocations in process, flat from 10³ to 10⁶ tokens. They measure, they
// assert nothing about time: run them with
//
//	go test ./service -run '^$' -bench . -benchmem
//
// With -short only the smallest index is built (CI runs them once with
// -short -benchtime=1x so that they never rot).
//
// The index is filled directly through index.apply, the way the change feed
// fills it, with synthetic tokens whose SecretHash is the real keyed hash of
// a generated secret, so every lookup goes through the real parse, checksum,
// HMAC and map. Fixtures are built once per size and shared by every
// benchmark of the run.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/secretformat"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// benchSizes are the numbers of tokens in the index.
var benchSizes = []int{1_000, 100_000, 1_000_000}

const (
	// benchSample bounds how many distinct tokens a benchmark cycles
	// through. It is large enough that at 10⁶ tokens the entries touched do
	// not fit in the CPU caches, as with real traffic spread over many
	// tokens.
	benchSample = 1 << 16
	// benchExpiredEvery makes one token in this many expired.
	benchExpiredEvery = 16
	// benchCustomPerms is the size of the custom token's permission set.
	benchCustomPerms = 500
	// benchAction is what the read-only tokens are asked about: allowed.
	benchAction = "api::article.article.find"
)

// benchFixture is a Service whose index holds n tokens, and secrets to
// present to it.
type benchFixture struct {
	s         *Service
	valid     []string // active read-only API tokens, shuffled
	expired   []string // expired API tokens
	unknown   []string // well formed, of no token
	malformed []string // right prefix, length and alphabet, wrong checksum
	custom    string   // a custom API token with benchCustomPerms permissions
	customAct string   // one of its permissions, the last in sorted order
	admin     string   // a full-access admin token
}

type fixtureOnce struct {
	once sync.Once
	f    *benchFixture
	err  error
}

var benchFixtures sync.Map // size → *fixtureOnce

// fixture returns the shared fixture of n tokens, building it on first use.
// The store it builds on lives in the TempDir of the first benchmark that
// asks; introspection never reads the store, so later benchmarks can keep
// using the service after that directory is gone.
func fixture(b *testing.B, n int) *benchFixture {
	b.Helper()
	if testing.Short() && n > benchSizes[0] {
		b.Skipf("-short: only %d tokens", benchSizes[0])
	}
	v, _ := benchFixtures.LoadOrStore(n, &fixtureOnce{})
	fo := v.(*fixtureOnce)
	fo.once.Do(func() { fo.f, fo.err = buildFixture(b.TempDir(), n) })
	if fo.err != nil {
		b.Fatal(fo.err)
	}
	return fo.f
}

func buildFixture(dir string, n int) (*benchFixture, error) {
	ctx := context.Background()
	store, err := bolt.Open(filepath.Join(dir, bolt.FileName), bolt.Options{})
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	s, err := New(ctx, Config{Store: store, HashKeys: [][]byte{key}})
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	tokens, secrets := benchTokens(s, n, now)
	for _, t := range tokens {
		s.index.apply(storage.Change{ID: t.ID, Token: t})
	}

	f := &benchFixture{s: s}
	r := rand.New(rand.NewPCG(uint64(n), 2))
	stride := max(1, n/benchSample)
	for i := 0; i < n; i += stride {
		if tokens[i].ExpireTime.IsZero() || tokens[i].ExpireTime.After(now) {
			f.valid = append(f.valid, secrets[i])
		}
	}
	for i := 0; i < n && len(f.expired) < benchSample; i += benchExpiredEvery {
		f.expired = append(f.expired, secrets[i])
	}
	r.Shuffle(len(f.valid), func(i, j int) { f.valid[i], f.valid[j] = f.valid[j], f.valid[i] })
	r.Shuffle(len(f.expired), func(i, j int) { f.expired[i], f.expired[j] = f.expired[j], f.expired[i] })
	for range 1024 {
		f.unknown = append(f.unknown, benchSecret(s, storage.KindAPI))
		bad := []byte(benchSecret(s, storage.KindAPI))
		last := strings.IndexByte(secretformat.Base62, bad[len(bad)-1])
		bad[len(bad)-1] = secretformat.Base62[(last+1)%62]
		f.malformed = append(f.malformed, string(bad))
	}

	// One custom token with many permissions, and one admin token for the
	// RPC's authorization.
	custom := benchToken(n, now)
	custom.Type = storage.TypeCustom
	for i := range benchCustomPerms {
		custom.Permissions = append(custom.Permissions, fmt.Sprintf("api::subject%03d.subject%03d.update", i, i))
	}
	f.customAct = custom.Permissions[len(custom.Permissions)-1]
	f.custom = benchSecret(s, storage.KindAPI)
	custom.SecretHash = hashSlice(s.hasher.sum(f.custom))
	s.index.apply(storage.Change{ID: custom.ID, Token: custom})

	admin := benchToken(n+1, now)
	admin.Kind, admin.Type = storage.KindAdmin, storage.TypeFullAccess
	f.admin = benchSecret(s, storage.KindAdmin)
	admin.SecretHash = hashSlice(s.hasher.sum(f.admin))
	s.index.apply(storage.Change{ID: admin.ID, Token: admin})

	if err := f.check(); err != nil {
		return nil, fmt.Errorf("fixture of %d tokens: %w", n, err)
	}
	// Drop the garbage of the build so that it does not cost GC time in
	// the first benchmark that runs.
	runtime.GC()
	return f, nil
}

// benchTokens returns n read-only API tokens and their secrets; one in
// benchExpiredEvery has expired, half of the others expire in 90 days.
// Secrets are generated and hashed on every core, since doing it for 10⁶ of
// them one after the other takes seconds.
func benchTokens(s *Service, n int, now time.Time) ([]*storage.Token, []string) {
	tokens := make([]*storage.Token, n)
	secrets := make([]string, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				secrets[i] = benchSecret(s, storage.KindAPI)
				t := benchToken(i, now)
				t.SecretHash = hashSlice(s.hasher.sum(secrets[i]))
				switch {
				case i%benchExpiredEvery == 0:
					t.Lifespan = 7 * 24 * time.Hour
					t.ExpireTime = now.Add(-time.Hour)
				case i%2 == 0:
					t.Lifespan = 90 * 24 * time.Hour
					t.ExpireTime = now.Add(t.Lifespan)
				}
				tokens[i] = t
			}
		}()
	}
	wg.Wait()
	return tokens, secrets
}

// benchToken returns a read-only API token numbered i, without a secret.
func benchToken(i int, now time.Time) *storage.Token {
	id := strconv.FormatInt(int64(i), 36)
	return &storage.Token{
		ID:          "bench" + id,
		Name:        "Bench token " + id,
		Description: "synthetic",
		Kind:        storage.KindAPI,
		Type:        storage.TypeReadOnly,
		CreateTime:  now,
		UpdateTime:  now,
		SecretHint:  DefaultAPIPrefix + "_…" + id,
	}
}

// benchSecret returns a new secret of kind k from the service's own
// generator, so that the fixtures follow the secret format as it changes.
func benchSecret(s *Service, k storage.Kind) string {
	secret, err := s.secrets.generate(k)
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return secret
}

func hashSlice(h secretHash) []byte { return h[:] }

// check makes sure each kind of secret gets the answer its benchmark is
// named after, so that a broken fixture cannot pass for a fast path.
func (f *benchFixture) check() error {
	now := f.s.now()
	for _, c := range []struct {
		name   string
		secret string
		want   tokendv1.InactiveReason
	}{
		{"valid", f.valid[0], tokendv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED},
		{"custom", f.custom, tokendv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED},
		{"expired", f.expired[0], tokendv1.InactiveReason_INACTIVE_REASON_EXPIRED},
		{"unknown", f.unknown[0], tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND},
		{"malformed", f.malformed[0], tokendv1.InactiveReason_INACTIVE_REASON_MALFORMED},
	} {
		if _, _, got := f.s.introspect(c.secret, now); got != c.want {
			return fmt.Errorf("%s secret: introspect says %v, want %v", c.name, got, c.want)
		}
	}
	e, _, _ := f.s.introspect(f.custom, now)
	if !e.grant.allows(f.customAct) || e.grant.allows(benchAction) {
		return fmt.Errorf("custom token: grant does not match its permissions")
	}
	return nil
}

// benchCase is one kind of secret presented to introspection.
type benchCase struct {
	name    string
	secrets []string
	action  string
}

func (f *benchFixture) cases() []benchCase {
	return []benchCase{
		{"valid", f.valid, benchAction},
		{"malformed", f.malformed, benchAction},
		{"unknown", f.unknown, benchAction},
		{"expired", f.expired, benchAction},
		{"custom500", []string{f.custom}, f.customAct},
	}
}

// introspectOnce is the in-process path: parse, checksum, keyed hash, index
// lookup, expiry, last-use touch and the permission check.
func introspectOnce(s *Service, secret, action string) bool {
	e, _, _ := s.introspect(secret, s.now())
	return e != nil && e.grant.allows(action)
}

var benchSink atomic.Bool

func BenchmarkIntrospect(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("tokens="+strconv.Itoa(n), func(b *testing.B) {
			f := fixture(b, n)
			for _, c := range f.cases() {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					ok, i := false, 0
					for b.Loop() {
						ok = introspectOnce(f.s, c.secrets[i%len(c.secrets)], c.action)
						i++
					}
					benchSink.Store(ok)
				})
			}
		})
	}
}

func BenchmarkIntrospectParallel(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("tokens="+strconv.Itoa(n), func(b *testing.B) {
			f := fixture(b, n)
			for _, c := range f.cases() {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					var start atomic.Int64
					b.RunParallel(func(pb *testing.PB) {
						// Each goroutine walks the sample from its own place.
						i := int(start.Add(7919))
						ok := false
						for pb.Next() {
							ok = introspectOnce(f.s, c.secrets[i%len(c.secrets)], c.action)
							i++
						}
						benchSink.Store(ok)
					})
				})
			}
		})
	}
}

// BenchmarkIntrospectRPC calls the IntrospectToken method itself, as the
// gRPC server would after decoding a request: authorization of the admin
// credential from the incoming metadata, action validation, introspection
// and the response message. Transport, encoding and interceptors are not
// included (the load command measures those).
func BenchmarkIntrospectRPC(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("tokens="+strconv.Itoa(n), func(b *testing.B) {
			f := fixture(b, n)
			for _, c := range []benchCase{
				{"valid", f.valid, benchAction},
				{"unknown", f.unknown, benchAction},
			} {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					ctx, req := f.rpcCall(c.action)
					i := 0
					for b.Loop() {
						req.Token = c.secrets[i%len(c.secrets)]
						if _, err := f.s.IntrospectToken(ctx, req); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
				b.Run(c.name+"/parallel", func(b *testing.B) {
					b.ReportAllocs()
					var start atomic.Int64
					b.RunParallel(func(pb *testing.PB) {
						ctx, req := f.rpcCall(c.action)
						i := int(start.Add(7919))
						for pb.Next() {
							req.Token = c.secrets[i%len(c.secrets)]
							if _, err := f.s.IntrospectToken(ctx, req); err != nil {
								b.Error(err)
								return
							}
							i++
						}
					})
				})
			}
		})
	}
}

// rpcCall returns an incoming context carrying the admin credential, as the
// gRPC server and the gateway build it, and a request to reuse.
func (f *benchFixture) rpcCall(action string) (context.Context, *tokendv1.IntrospectTokenRequest) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+f.admin))
	ctx, _ = WithCallInfo(ctx)
	return ctx, &tokendv1.IntrospectTokenRequest{Actions: []string{action}}
}
