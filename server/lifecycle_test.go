package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/internal/testkit"
	"github.com/tokend/tokend/server"
)

var rootSecretPattern = regexp.MustCompile(`tkda_[0-9A-Za-z]{40,}`)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestFirstStartWritesRootSecretOnce(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "nested", "data")
	rootFile := filepath.Join(dir, "root-token")
	cfg := server.Config{DataDir: dataDir, RootTokenFile: rootFile}

	ts := startServer(t, cfg)
	if got := mode(t, rootFile); got != 0o600 {
		t.Errorf("root token file mode %v, want 0600", got)
	}
	if !rootSecretPattern.MatchString(ts.root) {
		t.Fatalf("root token file holds %q: want a tkda_ secret", ts.root)
	}
	if got := mode(t, dataDir); got != 0o700 {
		t.Errorf("data dir mode %v, want 0700", got)
	}
	if got := mode(t, filepath.Join(dataDir, "hash.key")); got != 0o600 {
		t.Errorf("hash key mode %v, want 0600", got)
	}
	if out := ts.stderr.String() + ts.logs.String(); strings.Contains(out, ts.root) {
		t.Errorf("the root secret was printed although it went to a file")
	}
	if !strings.Contains(ts.logs.String(), "root admin token written") {
		t.Errorf("the log does not say where the root token went: %s", ts.logs.String())
	}
	got, err := ts.client.ListTokens(withSecret(ts.root), &tokendv1.ListTokensRequest{})
	if err != nil {
		t.Fatalf("the root secret does not work: %v", err)
	}
	var names []string
	for _, tok := range got.GetTokens() {
		names = append(names, fmt.Sprintf("%s/%s/%s/%v", tok.GetName(), tok.GetKind(), tok.GetType(), tok.GetExpireTime() != nil))
	}
	want := []string{
		"Full Access/TOKEN_KIND_API/TOKEN_TYPE_FULL_ACCESS/false",
		"Read Only/TOKEN_KIND_API/TOKEN_TYPE_READ_ONLY/false",
		"Root/TOKEN_KIND_ADMIN/TOKEN_TYPE_FULL_ACCESS/false",
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("first-start tokens %q, want %q", names, want)
	}
	root := ts.root
	ts.shutdown(t)

	t.Run("SecondStartWritesNothing", func(t *testing.T) {
		if err := os.Remove(rootFile); err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, cfg)
		if _, err := os.Stat(rootFile); !os.IsNotExist(err) {
			t.Errorf("the second start wrote the root token file again (stat: %v)", err)
		}
		if out := ts.stderr.String(); out != "" {
			t.Errorf("the second start printed: %q", out)
		}
		if rootSecretPattern.MatchString(ts.logs.String()) {
			t.Errorf("the second start logged a secret")
		}
		if _, err := ts.client.ListTokens(withSecret(root), &tokendv1.ListTokensRequest{}); err != nil {
			t.Errorf("the first root secret no longer works: %v", err)
		}
		if n := countTokens(t, &testServer{client: ts.client, root: root}); n != 3 {
			t.Errorf("%d tokens after a restart, want the 3 of the first start", n)
		}
		ts.shutdown(t)
	})

}

func TestRootSecretPrintedWhenNoFile(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	stderr, logs := &testkit.SyncBuffer{}, &testkit.SyncBuffer{}
	start := func() *server.Server {
		srv, err := server.Start(context.Background(), server.Config{
			GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir,
			Stderr: stderr, Logger: newTextLogger(logs),
		})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := start()
	secrets := rootSecretPattern.FindAllString(stderr.String(), -1)
	if len(secrets) != 1 {
		t.Fatalf("first start printed %d secrets, want 1: %q", len(secrets), stderr.String())
	}
	if strings.Contains(logs.String(), secrets[0]) {
		t.Errorf("the root secret is in the log, not only on stderr")
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	printed := stderr.String()
	srv = start()
	defer srv.Shutdown(context.Background())
	if stderr.String() != printed {
		t.Errorf("the second start printed %q", strings.TrimPrefix(stderr.String(), printed))
	}
}

func TestHashKeyFile(t *testing.T) {
	writeKey := func(t *testing.T, path string, perm os.FileMode) {
		t.Helper()
		key := make([]byte, 32)
		rand.Read(key)
		if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	start := func(cfg server.Config) error {
		cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Stderr = io.Discard
		cfg.Logger = newTextLogger(io.Discard)
		srv, err := server.Start(context.Background(), cfg)
		if err == nil {
			srv.Shutdown(context.Background())
		}
		return err
	}

	t.Run("ReadableByOthers", func(t *testing.T) {
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "hash.key")
		writeKey(t, keyFile, 0o644)
		err := start(server.Config{DataDir: filepath.Join(dir, "data"), HashKeyFile: keyFile})
		if err == nil {
			t.Fatal("Start accepted a hash key readable by others")
		}
		for _, want := range []string{keyFile, "chmod 600"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "tokend.db")); err == nil {
			t.Errorf("Start created a database although the key was refused")
		}
	})
	t.Run("DefaultKeyReadableByOthers", func(t *testing.T) {
		dataDir := t.TempDir()
		writeKey(t, filepath.Join(dataDir, "hash.key"), 0o640)
		if err := start(server.Config{DataDir: dataDir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Start = %v, want the chmod advice", err)
		}
	})
	t.Run("OwnerOnlyAccepted", func(t *testing.T) {
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "hash.key")
		writeKey(t, keyFile, 0o400)
		if err := start(server.Config{DataDir: filepath.Join(dir, "data"), HashKeyFile: keyFile}); err != nil {
			t.Errorf("Start with a 0400 key: %v", err)
		}
	})
	t.Run("TooShort", func(t *testing.T) {
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "hash.key")
		os.WriteFile(keyFile, []byte("abcd\n"), 0o600)
		if err := start(server.Config{DataDir: filepath.Join(dir, "data"), HashKeyFile: keyFile}); err == nil {
			t.Errorf("Start accepted a 2-byte key")
		}
	})
	t.Run("SameKeyAcrossRestarts", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		ts := startServer(t, server.Config{DataDir: dataDir})
		key1, _ := os.ReadFile(filepath.Join(dataDir, "hash.key"))
		ts.shutdown(t)
		ts2 := startServer(t, server.Config{DataDir: dataDir})
		key2, _ := os.ReadFile(filepath.Join(dataDir, "hash.key"))
		if string(key1) != string(key2) {
			t.Errorf("the hash key changed across a restart")
		}
		ts2.root = ts.root
		if n := countTokens(t, ts2); n != 3 {
			t.Errorf("%d tokens", n)
		}
	})
}

// TestShutdownFlushesLastUsed: with a flush interval far beyond the test,
// only Shutdown can have written the last-use time a restart shows.
func TestShutdownFlushesLastUsed(t *testing.T) {
	cfg := server.Config{DataDir: filepath.Join(t.TempDir(), "data"), FlushInterval: time.Hour}
	ts := startServer(t, cfg)
	tok, secret := ts.createToken(t, &tokendv1.Token{Name: "used"})
	unused, _ := ts.createToken(t, &tokendv1.Token{Name: "unused"})
	resp, err := ts.client.IntrospectToken(withSecret(ts.root), &tokendv1.IntrospectTokenRequest{Token: secret})
	if err != nil || !resp.GetActive() {
		t.Fatalf("IntrospectToken: %v, %v", resp, err)
	}
	used := resp.GetToken().GetLastUsedTime().AsTime()
	root := ts.root
	ts.shutdown(t)

	cfg.RootTokenFile = ts.cfg.RootTokenFile
	ts = startServer(t, cfg)
	ts.root = root
	got, err := ts.client.GetToken(withSecret(root), &tokendv1.GetTokenRequest{Id: tok.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if lu := got.GetToken().GetLastUsedTime(); lu == nil || !lu.AsTime().Equal(used) {
		t.Errorf("lastUsedTime after restart = %v, want %v", lu, used)
	}
	got, err = ts.client.GetToken(withSecret(root), &tokendv1.GetTokenRequest{Id: unused.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if lu := got.GetToken().GetLastUsedTime(); lu != nil {
		t.Errorf("a never-used token has lastUsedTime %v", lu.AsTime())
	}
	// The root credential was used too (it authorised every call).
	list, err := ts.client.ListTokens(withSecret(root), &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	if lu := list.GetTokens()[0].GetLastUsedTime(); lu == nil {
		t.Errorf("the root token's lastUsedTime was not kept across the restart")
	}
}

// TestGracefulShutdownFinishesInFlightRequest holds a REST request in
// flight (the server is reading its body), shuts down, checks that the
// listener is closed while the request is still pending, then lets it finish
// and gets its answer. Expect: 100-continue makes "the handler is running"
// observable without sleeping: the server sends 100 Continue when the
// handler first reads the body.
func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	ts := startServer(t, server.Config{})
	_, secret := ts.createToken(t, &tokendv1.Token{Name: "in flight"})
	addr := ts.srv.HTTPAddr().String()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body, _ := json.Marshal(map[string]any{"token": secret, "actions": []string{"api::a.a.find"}})
	head := fmt.Sprintf("POST /v1/tokens:introspect HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, ts.root, len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	// Half the body: the gateway is now blocked reading the rest.
	if _, err := conn.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	ts.stopped = true
	waitFor(t, "the HTTP listener to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return false
		}
		return true
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}

	if _, err := conn.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the in-flight answer: %v", err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || got["active"] != true || got["allowed"] != true {
		t.Errorf("in-flight answer: %d %v", resp.StatusCode, got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestStartFailureReleasesListeners: when Start fails after binding the
// gRPC listener (here: the HTTP address is taken), it must not leave the
// gRPC port bound, or a retry in the same process cannot bind it.
func TestStartFailureReleasesListeners(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A free port for gRPC: bind one, note it, release it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := l.Addr().String()
	l.Close()

	dataDir := filepath.Join(t.TempDir(), "data")
	_, err = server.Start(context.Background(), server.Config{
		GRPCAddr: grpcAddr, HTTPAddr: taken.Addr().String(), DataDir: dataDir,
		RootTokenFile: filepath.Join(t.TempDir(), "root"),
		Stderr:        io.Discard, Logger: newTextLogger(io.Discard),
	})
	if err == nil || !strings.Contains(err.Error(), "HTTP listener") {
		t.Fatalf("Start = %v, want an HTTP listener error", err)
	}
	if l, err := net.Listen("tcp", grpcAddr); err != nil {
		t.Errorf("after a failed Start the gRPC port is still bound: %v", err)
	} else {
		l.Close()
	}
	// The store was closed: another Start can open it at once.
	startServer(t, server.Config{DataDir: dataDir})
}

func TestRootTokenFileEdgeCases(t *testing.T) {
	t.Run("LeftoverFileReplaced", func(t *testing.T) {
		rootFile := filepath.Join(t.TempDir(), "root")
		if err := os.WriteFile(rootFile, []byte("tkda_stale\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, server.Config{RootTokenFile: rootFile})
		if !rootSecretPattern.MatchString(ts.root) {
			t.Fatalf("root token file holds %q after first start", ts.root)
		}
		if got := mode(t, rootFile); got != 0o600 {
			t.Errorf("replaced root token file has mode %v, want 0600", got)
		}
		if _, err := ts.client.ListTokens(withSecret(ts.root), &tokendv1.ListTokensRequest{}); err != nil {
			t.Errorf("the secret in the file does not work: %v", err)
		}
	})
	t.Run("UnwritableFilePrintsInstead", func(t *testing.T) {
		// Losing the only root secret would lock everyone out: when the
		// file cannot be written, the secret is printed.
		rootFile := filepath.Join(t.TempDir(), "no", "such", "dir", "root")
		ts := startServer(t, server.Config{RootTokenFile: rootFile})
		printed := rootSecretPattern.FindString(ts.stderr.String())
		if printed == "" {
			t.Fatalf("the root secret was neither written nor printed; stderr %q", ts.stderr.String())
		}
		if strings.Contains(ts.logs.String(), printed) {
			t.Errorf("the root secret is in the log")
		}
		if _, err := ts.client.ListTokens(withSecret(printed), &tokendv1.ListTokensRequest{}); err != nil {
			t.Errorf("the printed secret does not work: %v", err)
		}
	})
}

// TestDataDirInUse: a second server on a data dir another one holds fails
// within the store's lock timeout, with an error that says so, and leaves
// the first one serving.
func TestDataDirInUse(t *testing.T) {
	ts := startServer(t, server.Config{})
	begin := time.Now()
	_, err := server.Start(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: ts.cfg.DataDir,
		Stderr: io.Discard, Logger: newTextLogger(io.Discard),
	})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Start on a held data dir = %v, want a lock error", err)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("the second Start took %v to fail", took)
	}
	if n := countTokens(t, ts); n != 3 {
		t.Errorf("the first server lists %d tokens", n)
	}
}
