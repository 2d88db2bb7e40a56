package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAuthRoutesReloadOnSIGHUP runs the binary with -auth-routes, changes
// the file and sends SIGHUP: a valid file takes effect, a broken one is
// refused with its line in the log while the previous table stays.
func TestAuthRoutesReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root")
	routes := filepath.Join(dir, "routes.yaml")
	writeRoutes := func(text string) {
		t.Helper()
		if err := os.WriteFile(routes, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRoutes("routes:\n  - {method: GET, path: /open, public: true}\n")
	p := startTokend(t, tokendEnv("TOKEND_AUTH_ROUTES="+routes), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "data"), "-root-token-file", rootFile)
	data, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	proxy := strings.TrimSpace(string(data))
	ask := func(path string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.http+"/v1/auth", nil)
		req.Header.Set("X-Tokend-Authorization", "Bearer "+proxy)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", path)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hup := func(wantLog string) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitForLine(t, wantLog)
	}

	if got := ask("/open"); got != http.StatusOK {
		t.Fatalf("/open before reload: %d, want 200", got)
	}
	if got := ask("/later"); got != http.StatusForbidden {
		t.Fatalf("/later before reload: %d, want 403", got)
	}

	writeRoutes("routes:\n  - {method: GET, path: /later, public: true}\n")
	hup("forward auth routes reloaded")
	if got := ask("/later"); got != http.StatusOK {
		t.Errorf("/later after reload: %d, want 200", got)
	}
	if got := ask("/open"); got != http.StatusForbidden {
		t.Errorf("/open after reload: %d, want 403", got)
	}

	writeRoutes("routes:\n  - {method: GET, path: /later, public: true}\n  - {method: GET, path: /x}\n")
	hup("routes.yaml:3: rule 2: missing actions")
	if got := ask("/later"); got != http.StatusOK {
		t.Errorf("/later after a refused reload: %d, want 200 (the previous table)", got)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

func TestAuthRoutesBadFileAtStart(t *testing.T) {
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte("routes:\n  - method: GET\n    path: /api/*\n    actions: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "data"), "-root-token-file", filepath.Join(dir, "root"), "-auth-routes", routes)
	if code := p.wait(t); code == 0 {
		t.Fatal("tokend started with a broken route table")
	}
	if out := p.stderrText(); !strings.Contains(out, "routes.yaml:3: rule 1: path \"/api/*\"") {
		t.Errorf("stderr does not name the line at fault:\n%s", out)
	}
}

// waitForLine waits for a stderr line containing s.
func (p *proc) waitForLine(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("tokend exited before logging %q:\n%s", s, p.stderrText())
			}
			if strings.Contains(line, s) {
				return
			}
		case <-deadline:
			t.Fatalf("tokend did not log %q:\n%s", s, p.stderrText())
		}
	}
}
