package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/tokend/tokend/service"
)

// wantRefusedStart runs tokend with args, which must exit non-zero without a
// stack trace, having written nothing to the data dir, with every one of
// mentions on stderr.
func wantRefusedStart(t *testing.T, dataDir string, args []string, mentions ...string) {
	t.Helper()
	before := snapshotDir(t, dataDir)
	p := launch(t, tokendEnv(), args...)
	if code := p.wait(t); code == 0 {
		t.Fatalf("tokend started; want a refusal:\n%s", p.stderrText())
	}
	stderr := p.stderrText()
	for _, m := range append(mentions, "Nothing was changed") {
		if !strings.Contains(stderr, m) {
			t.Errorf("stderr does not mention %q:\n%s", m, stderr)
		}
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("stderr holds a stack trace:\n%s", stderr)
	}
	if after := snapshotDir(t, dataDir); after != before {
		t.Errorf("the data dir changed:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshotDir describes the files of dir and their contents.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%x ", e.Name(), hashBytes(data))
	}
	return b.String()
}

func hashBytes(b []byte) []byte {
	var h [8]byte
	for i, c := range b {
		h[i%8] = h[i%8]*31 + c
	}
	return h[:]
}

// keyMetric reads tokend_tokens_by_hash_key from /metrics, by key id.
func (p *proc) keyMetric(t *testing.T) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^tokend_tokens_by_hash_key\{key_id="([^"]*)"\} (\d+)$`).FindAllStringSubmatch(string(body), -1) {
		out[m[1]] = m[2]
	}
	return out
}

func keyIDOf(t *testing.T, hexKey string) string {
	t.Helper()
	key, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil {
		t.Fatal(err)
	}
	return service.HashKeyCheck(key).KeyID
}

// TestHashKeyCheck: a data dir whose key file is missing or holds the wrong
// key is refused at start, with nothing written; a rotated key file works,
// and the tokens per key are logged and exported.
func TestHashKeyCheck(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	rootFile := filepath.Join(dir, "root")
	keyFile := filepath.Join(dataDir, "hash.key")
	args := []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-root-token-file", rootFile}

	p := startTokend(t, tokendEnv(), args...)
	root := readTrimmed(t, rootFile)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	oldKey := readTrimmed(t, keyFile)
	oldID := keyIDOf(t, oldKey)
	if !strings.Contains(p.stderrText(), "key_id="+oldID) {
		t.Errorf("first start does not log its key id %s:\n%s", oldID, p.stderrText())
	}

	t.Run("MissingKeyFile", func(t *testing.T) {
		if err := os.Rename(keyFile, keyFile+".away"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(keyFile+".away", keyFile)
		wantRefusedStart(t, dataDir, args, keyFile, "does not exist", "Restore", oldID)
		if _, err := os.Stat(keyFile); err == nil {
			t.Fatal("a new key file was created for a store that holds tokens")
		}
	})

	newKey := strings.Repeat("5a", 32)
	newID := keyIDOf(t, newKey)
	t.Run("WrongKey", func(t *testing.T) {
		if err := os.WriteFile(keyFile, []byte(newKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(keyFile, []byte(oldKey+"\n"), 0o600)
		wantRefusedStart(t, dataDir, args, keyFile, "holds no key", newID, oldID, "rotate")
	})

	t.Run("Rotation", func(t *testing.T) {
		// The new key first, the old one kept below it.
		if err := os.WriteFile(keyFile, []byte(newKey+"\n"+oldKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startTokend(t, tokendEnv(), args...)
		if got := p.keyMetric(t); got[newID] != "0" || got[oldID] != "3" {
			t.Fatalf("tokens by key after adding a key = %v, want %s:0 %s:3", got, newID, oldID)
		}
		for _, want := range []string{"key_id=" + newID + " newest=true tokens=0", "key_id=" + oldID + " newest=false tokens=3"} {
			if !strings.Contains(p.stderrText(), want) {
				t.Errorf("start-up log lacks %q:\n%s", want, p.stderrText())
			}
		}
		// The root token, hashed under the old key, still works; a
		// regenerated token moves to the new key.
		tokens := p.tokensByID(t, root)
		var readOnly, rootID string
		for id, tok := range tokens {
			switch get(tok, "name") {
			case "Read Only":
				readOnly = id
			case "Root":
				rootID = id
			}
		}
		p.ok(t, "POST", "/v1/tokens/"+readOnly+":regenerate", root, map[string]any{})
		v := p.ok(t, "POST", "/v1/tokens/"+rootID+":regenerate", root, map[string]any{})
		root = get(v, "secret")
		if got := p.keyMetric(t); got[newID] != "2" || got[oldID] != "1" {
			t.Fatalf("tokens by key after two regenerations = %v, want %s:2 %s:1", got, newID, oldID)
		}
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("exit code %d", code)
		}

		// Dropping the old key: the store knows the new one, so tokend
		// starts, and warns about the token left behind.
		if err := os.WriteFile(keyFile, []byte(newKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p = startTokend(t, tokendEnv(), args...)
		if n := len(p.tokensByID(t, root)); n != 3 {
			t.Errorf("root regenerated under the new key lists %d tokens", n)
		}
		if want := "hash key missing from the key file\" key_id=" + oldID + " tokens=1"; !strings.Contains(p.stderrText(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, p.stderrText())
		}
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	})
}

func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(data))
}
