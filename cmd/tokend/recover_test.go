package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestRecoverRoot runs `tokend recover-root` with the built binary: it
// refuses while a server holds the database, then mints a working
// unlimited full-access admin token, recorded in the audit trail, whose
// secret is shown once (a 0600 file, or stderr).
func TestRecoverRoot(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	serve := []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-data-dir", dataDir}
	secretRe := regexp.MustCompile(`tkda_[0-9A-Za-z]{40,}`)

	p := startTokend(t, tokendEnv(), serve...)
	root := secretRe.FindString(p.stderrText())
	if root == "" {
		t.Fatalf("no root secret printed:\n%s", p.stderrText())
	}
	before := len(p.tokensByID(t, root))

	// While the server runs, the database is locked: refused, nothing minted.
	r := launch(t, tokendEnv(), "recover-root", "-data-dir", dataDir)
	if code := r.wait(t); code == 0 {
		t.Fatalf("recover-root beside a running server exited 0:\n%s", r.stderrText())
	}
	if out := r.stderrText(); !strings.Contains(out, "locked") || !strings.Contains(out, "stop the server") || secretRe.MatchString(out) {
		t.Errorf("recover-root beside a running server said:\n%s\nwant it to say the database is locked and to stop the server, with no secret", out)
	}
	if n := len(p.tokensByID(t, root)); n != before {
		t.Errorf("%d tokens after the refused recovery, want %d", n, before)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("server exit code %d", code)
	}

	// Offline, into a file.
	file := filepath.Join(t.TempDir(), "recovered")
	r = launch(t, tokendEnv(), "recover-root", "-data-dir", dataDir, "-root-token-file", file)
	if code := r.wait(t); code != 0 {
		t.Fatalf("recover-root exited %d:\n%s", code, r.stderrText())
	}
	if secretRe.MatchString(r.stderrText()) {
		t.Errorf("recover-root with a file also printed the secret:\n%s", r.stderrText())
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %v, want 0600", perm)
	}
	data, _ := os.ReadFile(file)
	fromFile := secretRe.FindString(string(data))
	if fromFile == "" {
		t.Fatalf("token file holds no admin secret: %q", data)
	}
	// The file is never overwritten.
	r = launch(t, tokendEnv(), "recover-root", "-data-dir", dataDir, "-root-token-file", file)
	if code := r.wait(t); code == 0 || !strings.Contains(r.stderrText(), "already exists") {
		t.Errorf("recover-root onto an existing file: exit %d\n%s", code, r.stderrText())
	}

	// Offline, onto stderr, once.
	r = launch(t, tokendEnv(), "recover-root", "-data-dir", dataDir)
	if code := r.wait(t); code != 0 {
		t.Fatalf("recover-root exited %d:\n%s", code, r.stderrText())
	}
	printed := secretRe.FindAllString(r.stderrText(), -1)
	if len(printed) != 1 {
		t.Fatalf("recover-root printed %d secrets, want 1:\n%s", len(printed), r.stderrText())
	}

	// Both recovered secrets work, as unlimited full-access admin tokens,
	// and the audit trail names the recovery.
	p = startTokend(t, tokendEnv(), serve...)
	for _, secret := range []string{fromFile, printed[0]} {
		tokens := p.tokensByID(t, secret)
		if len(tokens) != before+2 {
			t.Errorf("%d tokens listed with a recovered secret, want %d", len(tokens), before+2)
		}
	}
	var recovered int
	for _, tok := range p.tokensByID(t, fromFile) {
		if strings.HasPrefix(get(tok, "name"), "Root (recovered") {
			recovered++
			if get(tok, "type") != "TOKEN_TYPE_FULL_ACCESS" || get(tok, "kind") != "TOKEN_KIND_ADMIN" || tok["lifespan"] != nil {
				t.Errorf("recovered token %v: want an unlimited full-access admin token", tok)
			}
		}
	}
	if recovered != 2 {
		t.Errorf("%d recovered tokens listed, want 2", recovered)
	}
	events := p.ok(t, "GET", "/v1/auditEvents", printed[0], nil)
	var audited int
	list, _ := events["auditEvents"].([]any)
	for _, ev := range list {
		if get(ev, "callerName") == "tokend recover-root" && get(ev, "operation") == "AUDIT_OPERATION_CREATE_TOKEN" {
			audited++
		}
	}
	if audited != 2 {
		t.Errorf("%d audit events by tokend recover-root, want 2: %v", audited, list)
	}
	// The recovered tokens never appear in the server's output.
	for _, secret := range []string{fromFile, printed[0]} {
		if strings.Contains(p.stderrText(), secret) {
			t.Errorf("the server's stderr holds a recovered secret")
		}
	}
}

// TestRecoverRootRefusesWithoutStore: no database or no hash key means
// nothing to recover, and nothing is created.
func TestRecoverRootRefusesWithoutStore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "empty")
	r := launch(t, tokendEnv(), "recover-root", "-data-dir", dataDir)
	if code := r.wait(t); code == 0 || !strings.Contains(r.stderrText(), "no database") {
		t.Errorf("recover-root on a missing data dir: exit %d\n%s", code, r.stderrText())
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Errorf("recover-root created %s", dataDir)
	}
}
