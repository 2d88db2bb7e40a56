package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/storage/etcd/etcdtest"
)

// TestReplicasOnEtcd runs three tokend binaries on one embedded etcd and
// checks what several replicas promise: one bootstrap, every change seen by
// every replica, names unique across them, acknowledged writes surviving a
// SIGKILL, and, while etcd is down, introspection from memory until
// -max-staleness, then failing closed, writes and /readyz refused, and all
// of it recovering when etcd returns.
func TestReplicasOnEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	keyFile := writeHashKey(t, dir, "hash.key")
	const maxStaleness = 3 * time.Second
	args := func(name string) []string {
		return []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
			"-data-dir", filepath.Join(dir, name), "-root-token-file", filepath.Join(dir, name+".root"),
			"-store", "etcd", "-etcd-endpoints", srv.Endpoint(), "-etcd-prefix", "/e2e/",
			"-etcd-dial-timeout", "1s", "-hash-key-file", keyFile, "-max-staleness", maxStaleness.String(),
			"-flush-interval", "200ms"}
	}

	// Three first starts at once: one bootstrap, one root token.
	names := []string{"a", "b", "c"}
	replicas := make([]*proc, 3)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { replicas[i] = startTokend(t, tokendEnv(), args(name)...) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	a, b, c := replicas[0], replicas[1], replicas[2]
	var root string
	for _, name := range names {
		if data, err := os.ReadFile(filepath.Join(dir, name+".root")); err == nil {
			if root != "" {
				t.Fatal("more than one replica bootstrapped")
			}
			root = strings.TrimSpace(string(data))
		}
	}
	if root == "" {
		t.Fatal("no replica wrote a root token")
	}
	if got := namesOf(b.tokensByID(t, root)); strings.Join(got, ",") != "Full Access,Read Only,Root" {
		t.Fatalf("tokens after three first starts: %q", got)
	}

	introspectEventually := func(t *testing.T, secret string, active bool, on ...*proc) {
		t.Helper()
		waitIntrospect(t, root, secret, active, on...)
	}

	t.Run("ChangesReachEveryReplica", func(t *testing.T) {
		v := a.ok(t, "POST", "/v1/tokens", root, map[string]any{"name": "shared"})
		id, first := get(v, "token", "id"), get(v, "secret")
		introspectEventually(t, first, true, b, c)

		v = b.ok(t, "POST", "/v1/tokens/"+id+":regenerate", root, map[string]any{})
		second := get(v, "secret")
		introspectEventually(t, first, false, a, c)
		introspectEventually(t, second, true, a, c)

		if status, v := c.call(t, "DELETE", "/v1/tokens/"+id, root, nil); status != http.StatusOK {
			t.Fatalf("delete on c: %d %v", status, v)
		}
		introspectEventually(t, second, false, a, b, c)
	})

	t.Run("SameNameAcrossReplicas", func(t *testing.T) {
		for round := range 3 {
			statuses := make([]int, 6)
			var wg sync.WaitGroup
			for i := range statuses {
				wg.Go(func() {
					statuses[i], _ = replicas[i%3].call(t, "POST", "/v1/tokens", root, map[string]any{"name": fmt.Sprintf("contested %d", round)})
				})
			}
			wg.Wait()
			won := 0
			for _, s := range statuses {
				switch s {
				case http.StatusOK:
					won++
				case http.StatusConflict:
				default:
					t.Fatalf("round %d: statuses %v", round, statuses)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d creates won (statuses %v), want 1", round, won, statuses)
			}
		}
	})

	t.Run("AcknowledgedWritesSurviveSIGKILL", func(t *testing.T) {
		victim := startTokend(t, tokendEnv(), args("victim")...)
		var (
			mu    sync.Mutex
			acked []string
		)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("kill %d-%d", w, i)
					status, _, err := tryCall(victim, "POST", "/v1/tokens", root, map[string]any{"name": name})
					if err != nil {
						return // killed
					}
					if status == http.StatusOK {
						mu.Lock()
						acked = append(acked, name)
						mu.Unlock()
					}
				}
			})
		}
		// Kill once some writes are acknowledged.
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= 20 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		victim.cmd.Process.Signal(syscall.SIGKILL)
		close(stop)
		wg.Wait()
		victim.wait(t)
		listed := map[string]bool{}
		for _, name := range namesOf(a.tokensByID(t, root)) {
			listed[name] = true
		}
		for _, name := range acked {
			if !listed[name] {
				t.Errorf("acknowledged create of %q is lost", name)
			}
		}
	})

	t.Run("EtcdDown", func(t *testing.T) {
		v := a.ok(t, "POST", "/v1/tokens", root, map[string]any{"name": "before outage"})
		secret := get(v, "secret")
		introspectEventually(t, secret, true, a, b, c)

		srv.Stop()
		down := time.Now()
		// Introspection answers from memory: every replica is asked at
		// once, well within -max-staleness (in-memory calls take
		// microseconds), before anything waits on etcd's timeouts.
		for _, p := range replicas {
			status, v := p.call(t, "POST", "/v1/tokens:introspect", root, map[string]any{"token": secret})
			if since := time.Since(down); since < maxStaleness/2 && (status != http.StatusOK || v["active"] != true) {
				t.Errorf("replica %s, etcd stopped %v ago: introspect %d %v, want active from memory", p.http, since, status, v)
			}
		}
		for _, p := range replicas {
			if status, v := p.call(t, "POST", "/v1/tokens", root, map[string]any{"name": "during outage " + p.http}); status != http.StatusServiceUnavailable {
				t.Errorf("replica %s, etcd down: create %d %v, want 503", p.http, status, v)
			}
			if status, _ := p.call(t, "GET", "/readyz", "", nil); status != http.StatusServiceUnavailable {
				t.Errorf("replica %s, etcd down: /readyz %d, want 503", p.http, status)
			}
		}
		// Past -max-staleness every replica fails closed.
		for _, p := range replicas {
			deadline := time.Now().Add(maxStaleness + 20*time.Second)
			for {
				status, v := p.call(t, "POST", "/v1/tokens:introspect", root, map[string]any{"token": secret})
				if status == http.StatusServiceUnavailable {
					break
				}
				if status != http.StatusOK || time.Now().After(deadline) {
					t.Fatalf("replica %s, etcd down for %v: introspect %d %v, want 503 once stale", p.http, time.Since(down), status, v)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}

		srv.Restart()
		for _, p := range replicas {
			deadline := time.Now().Add(30 * time.Second)
			for {
				status, _ := p.call(t, "GET", "/readyz", "", nil)
				if status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %s: /readyz %d 30s after etcd came back", p.http, status)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		introspectEventually(t, secret, true, a, b, c)
		v = c.ok(t, "POST", "/v1/tokens", root, map[string]any{"name": "after outage"})
		introspectEventually(t, get(v, "secret"), true, a, b)
		for _, name := range namesOf(a.tokensByID(t, root)) {
			if strings.HasPrefix(name, "during outage") {
				t.Errorf("a create refused during the outage was stored: %q", name)
			}
		}
	})
}

// TestReplicasOnEtcdCluster runs two tokend binaries on a three-member
// embedded etcd cluster, each given every member's endpoint, and stops one
// member: nothing changes for tokend. Writes on either replica succeed, the
// other sees them, a regenerated secret dies everywhere, the last-owner
// rule still holds, and both stay ready.
func TestReplicasOnEtcdCluster(t *testing.T) {
	members := etcdtest.StartCluster(t, 3)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.Endpoint())
	}
	dir := t.TempDir()
	keyFile := writeHashKey(t, dir, "hash.key")
	start := func(name string) *proc {
		return startTokend(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
			"-data-dir", filepath.Join(dir, name), "-root-token-file", filepath.Join(dir, name+".root"),
			"-store", "etcd", "-etcd-endpoints", strings.Join(endpoints, ","), "-etcd-prefix", "/cluster/",
			"-etcd-dial-timeout", "2s", "-hash-key-file", keyFile)
	}
	a := start("a")
	b := start("b")
	data, err := os.ReadFile(filepath.Join(dir, "a.root"))
	if err != nil {
		t.Fatalf("the first replica wrote no root token: %v", err)
	}
	root := strings.TrimSpace(string(data))
	introspectEventually := func(t *testing.T, p *proc, secret string, active bool) {
		t.Helper()
		waitIntrospect(t, root, secret, active, p)
	}
	v := a.ok(t, "POST", "/v1/tokens", root, map[string]any{"name": "before the member stops"})
	before := get(v, "secret")
	introspectEventually(t, b, before, true)

	members[0].Stop()

	v = b.ok(t, "POST", "/v1/tokens", root, map[string]any{"name": "after the member stopped"})
	id, first := get(v, "token", "id"), get(v, "secret")
	introspectEventually(t, a, first, true)
	v = a.ok(t, "POST", "/v1/tokens/"+id+":regenerate", root, map[string]any{})
	introspectEventually(t, b, first, false)
	introspectEventually(t, b, get(v, "secret"), true)
	introspectEventually(t, a, before, true)
	// Root is the only unlimited full-access admin token: neither replica
	// may take it away.
	rootID := ""
	for id, tok := range a.tokensByID(t, root) {
		if get(tok, "name") == "Root" {
			rootID = id
		}
	}
	if status, v := b.call(t, "DELETE", "/v1/tokens/"+rootID, root, nil); status != http.StatusConflict {
		t.Fatalf("deleting the last owner with a member down: %d %v, want 409", status, v)
	}
	for _, p := range []*proc{a, b} {
		if status, _ := p.call(t, "GET", "/readyz", "", nil); status != http.StatusOK {
			t.Errorf("replica %s with one of three members down: /readyz %d, want 200", p.http, status)
		}
	}
}

// waitIntrospect waits until every replica in on answers active (or not)
// for secret, asked with the admin credential root: replicas apply changes
// as their watch delivers them. It fails t after 10 s.
func waitIntrospect(t *testing.T, root, secret string, active bool, on ...*proc) {
	t.Helper()
	for _, p := range on {
		deadline := time.Now().Add(10 * time.Second)
		for {
			v := p.ok(t, "POST", "/v1/tokens:introspect", root, map[string]any{"token": secret})
			if v["active"] == active {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s: introspect = %v, want active=%v", p.http, v, active)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// tryCall is proc.call for a process that may be gone: it returns the
// transport error instead of failing the test.
func tryCall(p *proc, method, path, secret string, body any) (int, map[string]any, error) {
	data := strings.NewReader(fmt.Sprintf(`{"name":%q}`, body.(map[string]any)["name"]))
	req, err := http.NewRequest(method, "http://"+p.http+path, data)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil, nil
}

// TestMigrate grows a one-node bbolt tokend into an etcd one: migrate
// copies the stopped store, refuses to copy into a prefix that holds data,
// and a replica started on the copy serves the same tokens and secrets
// without bootstrapping again.
func TestMigrate(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	rootFile := filepath.Join(dir, "root")
	p := startTokend(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-root-token-file", rootFile, "-flush-interval", "50ms")
	data, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(data))
	p.ok(t, "POST", "/v1/actions:register", root, map[string]any{"actions": []map[string]string{{"id": "api::a.a.find", "description": "find"}}})
	v := p.ok(t, "POST", "/v1/tokens", root, map[string]any{"name": "moved", "type": "TOKEN_TYPE_CUSTOM", "permissions": []string{"api::a.a.find"}})
	secret, id := get(v, "secret"), get(v, "token", "id")
	p.ok(t, "POST", "/v1/tokens:introspect", root, map[string]any{"token": secret})
	before := p.tokensByID(t, root)
	eventsBefore := auditCount(t, p, root)
	if eventsBefore < 3 {
		t.Fatalf("%d audit events before migration, want at least bootstrap, register and create", eventsBefore)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("tokend exited %d", code)
	}
	if before[id]["lastUsedTime"] == nil {
		t.Fatal("the last use was not flushed on shutdown")
	}

	migrateArgs := []string{"migrate", "-data-dir", dataDir, "-etcd-endpoints", srv.Endpoint(), "-etcd-prefix", "/migrated/"}
	m := launch(t, tokendEnv(), migrateArgs...)
	if code := m.wait(t); code != 0 {
		t.Fatalf("migrate exited %d:\n%s", code, m.stderrText())
	}
	if !strings.Contains(m.stderrText(), "verified") {
		t.Fatalf("migrate output: %s", m.stderrText())
	}
	again := launch(t, tokendEnv(), migrateArgs...)
	if code := again.wait(t); code == 0 || !strings.Contains(again.stderrText(), "already holds data") {
		t.Fatalf("second migrate into the same prefix exited %d: %s", code, again.stderrText())
	}

	e := startTokend(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "replica"), "-root-token-file", filepath.Join(dir, "root2"),
		"-store", "etcd", "-etcd-endpoints", srv.Endpoint(), "-etcd-prefix", "/migrated/",
		"-hash-key-file", filepath.Join(dataDir, "hash.key"))
	if _, err := os.Stat(filepath.Join(dir, "root2")); err == nil {
		t.Fatal("the replica on the migrated prefix bootstrapped again")
	}
	after := e.tokensByID(t, root)
	if len(after) != len(before) {
		t.Fatalf("%d tokens after migration, %d before", len(after), len(before))
	}
	for tid, tok := range before {
		for _, field := range []string{"name", "type", "createTime", "updateTime", "lastUsedTime", "secretHint"} {
			if fmt.Sprint(after[tid][field]) != fmt.Sprint(tok[field]) {
				t.Errorf("token %s: %s %v after migration, %v before", tid, field, after[tid][field], tok[field])
			}
		}
	}
	if v := e.ok(t, "POST", "/v1/tokens:introspect", root, map[string]any{"token": secret, "actions": []string{"api::a.a.find"}}); v["active"] != true || v["allowed"] != true {
		t.Fatalf("the migrated token introspects %v", v)
	}
	if got := auditCount(t, e, root); got != eventsBefore {
		t.Fatalf("%d audit events after migration, %d before", got, eventsBefore)
	}
}

// auditCount counts the audit events a replica lists (up to 1000).
func auditCount(t *testing.T, p *proc, root string) int {
	t.Helper()
	v := p.ok(t, "GET", "/v1/auditEvents?page_size=1000", root, nil)
	events, _ := v["auditEvents"].([]any)
	return len(events)
}

// TestRecoverRootOnEtcd: on a shared store, recover-root mints a new owner
// beside the running replicas, which accept it as soon as their feed brings
// it; a key file the store does not know is refused, with nothing minted.
func TestRecoverRootOnEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	keyFile, otherKey := writeHashKey(t, dir, "hash.key"), writeHashKey(t, dir, "other.key")
	store := []string{"-store", "etcd", "-etcd-endpoints", srv.Endpoint(), "-etcd-prefix", "/recover/"}
	p := startTokend(t, tokendEnv(), append([]string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "replica"), "-root-token-file", filepath.Join(dir, "root"),
		"-hash-key-file", keyFile}, store...)...)

	wrong := launch(t, tokendEnv(), append([]string{"recover-root", "-hash-key-file", otherKey,
		"-root-token-file", filepath.Join(dir, "wrong.token")}, store...)...)
	if code := wrong.wait(t); code == 0 || !strings.Contains(wrong.stderrText(), "holds no key") {
		t.Fatalf("recover-root with a key the store does not know exited %d: %s", code, wrong.stderrText())
	}
	if _, err := os.Stat(filepath.Join(dir, "wrong.token")); err == nil {
		t.Fatal("recover-root with the wrong key wrote a token file")
	}

	m := launch(t, tokendEnv(), append([]string{"recover-root", "-hash-key-file", keyFile,
		"-root-token-file", filepath.Join(dir, "recovered.token")}, store...)...)
	if code := m.wait(t); code != 0 {
		t.Fatalf("recover-root exited %d: %s", code, m.stderrText())
	}
	data, err := os.ReadFile(filepath.Join(dir, "recovered.token"))
	if err != nil {
		t.Fatal(err)
	}
	recovered := strings.TrimSpace(string(data))
	// The running replica learns of the new token from its feed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.http+"/v1/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+recovered)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica does not accept the recovered token: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the replica, not synchronising with it
	}
	if got := namesOf(p.tokensByID(t, recovered)); len(got) != 4 || !strings.HasPrefix(got[3], "Root (recovered ") {
		t.Fatalf("tokens after recovery: %q", got)
	}
}

// writeHashKey writes a new random hash key file named name in dir, as
// every replica of one store is given, and returns its path.
func writeHashKey(t *testing.T, dir, name string) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
