package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// runID tells apart the token names of two runs against one running server.
var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

// createTokens creates n read-only API tokens through the gRPC API with
// `concurrency` workers and returns their ids and secrets.
func createTokens(ctx context.Context, t *target, n, concurrency int, label string) (ids, secrets []string, err error) {
	client, closeConn, err := tokenClient(t)
	if err != nil {
		return nil, nil, err
	}
	defer closeConn()
	ctx = withAdmin(ctx, t.admin)
	ids, secrets = make([]string, n), make([]string, n)
	var next atomic.Int64
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				resp, err := client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
					Name: fmt.Sprintf("bench %s %s %d", runID, label, i),
					Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY,
				}})
				if err != nil {
					errs[w] = fmt.Errorf("create token %d: %w", i, err)
					return
				}
				ids[i], secrets[i] = resp.GetToken().GetId(), resp.GetSecret()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return compact(ids), compact(secrets), err
	}
	return ids, secrets, nil
}

// deleteTokens deletes the tokens with these ids through the API.
func deleteTokens(ctx context.Context, t *target, ids []string) error {
	client, closeConn, err := tokenClient(t)
	if err != nil {
		return err
	}
	defer closeConn()
	ctx = withAdmin(ctx, t.admin)
	var errs []error
	for _, id := range ids {
		if _, err := client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: id}); err != nil {
			errs = append(errs, fmt.Errorf("delete token %s: %w", id, err))
			if len(errs) == 3 {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func compact(s []string) []string {
	out := s[:0]
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// seedDirect prepares data directory "data" of l with n API tokens, of which
// `probes` were created through the API, and returns the root admin secret
// and the probes' secrets.
//
// Creating 10⁶ tokens through the API takes an fsync each, far too long, and
// only the service can turn a secret into its keyed hash. So a first server
// starts on a scratch directory with the shared key file, makes the root
// token and the probes through the API, and stops. The real store then gets
// n-probes filler tokens with random hashes (tokens whose secret nobody
// knows, like the ones a first start discards) in one bbolt transaction,
// and the scratch store's records, hashes included, one transaction each.
// The server then starts on the real store with the same key, so the root
// and probe secrets work.
func seedDirect(ctx context.Context, l layout, n, probes, concurrency int, logMode string) (admin string, secrets []string, err error) {
	const scratch = "scratch"
	scfg := l.serverConfig(scratch, logMode)
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return "", nil, err
	}
	t := &target{grpcAddr: srv.GRPCAddr().String(), httpAddr: srv.HTTPAddr().String(), srv: srv}
	if t.admin, err = rootToken(scfg); err != nil {
		srv.Shutdown(ctx)
		return "", nil, err
	}
	_, secrets, err = createTokens(ctx, t, probes, concurrency, "probe")
	if err := errors.Join(err, t.close(ctx)); err != nil {
		return "", nil, err
	}
	records, err := readAllTokens(ctx, filepath.Join(l.dataDir(scratch), bolt.FileName))
	if err != nil {
		return "", nil, err
	}
	if err := os.RemoveAll(l.dataDir(scratch)); err != nil {
		return "", nil, err
	}

	if err := os.MkdirAll(l.dataDir("data"), 0o700); err != nil {
		return "", nil, err
	}
	store, err := bolt.Open(filepath.Join(l.dataDir("data"), bolt.FileName), bolt.Options{})
	if err != nil {
		return "", nil, err
	}
	fillers := n - probes
	audit := &storage.AuditEvent{
		Time:      time.Now().UTC(),
		Operation: storage.AuditBootstrap,
		Fields:    []string{fmt.Sprintf("tokend-bench: %d synthetic tokens", fillers)},
	}
	_, err = store.Bootstrap(ctx, fillerTokens(fillers), audit)
	for _, r := range records {
		if err != nil {
			break
		}
		err = store.CreateToken(ctx, r, nil)
	}
	if err := errors.Join(err, store.Close()); err != nil {
		return "", nil, fmt.Errorf("seed store: %w", err)
	}
	return t.admin, secrets, nil
}

// readAllTokens returns every token of the store file at path.
func readAllTokens(ctx context.Context, path string) ([]*storage.Token, error) {
	store, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var all []*storage.Token
	q := storage.ListQuery{Limit: 1000}
	for {
		page, err := store.ListTokens(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Tokens...)
		if page.Next == "" {
			return all, nil
		}
		q.After = page.Next
	}
}

// fillerTokens returns n read-only API tokens shaped like real ones (ids,
// names and hints of the usual lengths, half of them expiring in 90 days)
// with random secret hashes.
//
// Token i has the i-th smallest id, name, create time and hash: bbolt keeps
// a transaction's inserts into one page in one growing node, so inserting
// 10⁶ keys in random order moves O(n²) bytes, and in order appends.
// Which hash goes with which id does not matter to the index, which places
// entries by hash.
func fillerTokens(n int) []*storage.Token {
	now := time.Now().UTC()
	r := rand.New(rand.NewPCG(uint64(now.UnixNano()), 1))
	hashes := make([][32]byte, n)
	for i := range hashes {
		for j := 0; j < 32; j += 8 {
			binary.LittleEndian.PutUint64(hashes[i][j:], r.Uint64())
		}
	}
	slices.SortFunc(hashes, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	tokens := make([]*storage.Token, n)
	for i := range tokens {
		created := now.Add(-time.Duration(n-i) * time.Millisecond)
		t := &storage.Token{
			ID:          fmt.Sprintf("filler%020d", i), // 26 characters, like real ids
			Name:        fmt.Sprintf("Filler token %07d", i),
			Description: "synthetic token written by tokend-bench",
			Kind:        storage.KindAPI,
			Type:        storage.TypeReadOnly,
			CreateTime:  created,
			UpdateTime:  created,
			SecretHash:  hashes[i][:],
			SecretHint:  fmt.Sprintf("tkd_…%04d", i%10000),
		}
		if i%2 == 0 {
			t.Lifespan = 90 * 24 * time.Hour
			t.ExpireTime = created.Add(t.Lifespan)
		}
		tokens[i] = t
	}
	return tokens
}

// freeMemory collects garbage and returns freed memory to the system, so
// that what the seeding allocated does not count as the server's.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
