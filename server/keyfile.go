package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage"
)

// hashKeyLen is the size of a generated hash key.
const hashKeyLen = 32

// openHashKeys returns the hash keys of the key file at path, keys as read
// by readHashKeys (nil when the file does not exist), after matching them
// against the key checks recorded in store, and records the checks of keys
// the store does not know yet (a new store, or a key added for rotation). A
// key file is created (with one random key) only for a store that holds no
// token and has no check recorded: anywhere else a fresh key would silently
// turn every stored secret into an unknown one. It refuses, having written
// nothing, when the store holds tokens and the file is missing or holds none
// of the recorded keys; the error says which file and what to do. A store
// that holds tokens but no check (written before checks were recorded)
// cannot be verified: its checks are recorded from the file.
func openHashKeys(ctx context.Context, store storage.Store, path string, keys [][]byte) ([][]byte, error) {
	recorded, err := store.KeyChecks(ctx)
	if err != nil {
		return nil, fmt.Errorf("hash key checks: %w", err)
	}
	page, err := store.ListTokens(ctx, storage.ListQuery{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("hash key checks: %w", err)
	}
	holdsTokens := len(page.Tokens) > 0
	if keys == nil {
		if holdsTokens || len(recorded) > 0 {
			return nil, fmt.Errorf("hash key file %s does not exist, but the database holds tokens whose secrets were hashed "+
				"with a key from it (key ids %s). Restore the file from a backup, or point -hash-key-file "+
				"(TOKEND_HASH_KEY_FILE) at it, and start again: a new key would make every token unknown. "+
				"Nothing was changed", path, keyIDs(recorded))
		}
		if keys, err = createHashKey(path); err != nil {
			return nil, err
		}
	}
	checks := make([]storage.KeyCheck, len(keys))
	for i, key := range keys {
		checks[i] = service.HashKeyCheck(key)
	}
	if holdsTokens && len(recorded) > 0 && !anyRecorded(checks, recorded) {
		return nil, fmt.Errorf("hash key file %s holds no key the database's tokens were hashed with (the file has key ids %s; "+
			"the database knows %s). Point -hash-key-file (TOKEND_HASH_KEY_FILE) at the right file, or restore it from "+
			"a backup. To rotate keys, put the new key on the first line and keep the old ones below it. Nothing was changed",
			path, keyIDs(checks), keyIDs(recorded))
	}
	for _, c := range checks {
		if err := store.RecordKeyCheck(ctx, c); err != nil {
			return nil, fmt.Errorf("hash key file %s, key id %s: %w", path, c.KeyID, err)
		}
	}
	return keys, nil
}

// anyRecorded reports whether one of checks is among recorded.
func anyRecorded(checks, recorded []storage.KeyCheck) bool {
	for _, c := range checks {
		for _, r := range recorded {
			if c.KeyID == r.KeyID && bytes.Equal(c.Check, r.Check) {
				return true
			}
		}
	}
	return false
}

func keyIDs(checks []storage.KeyCheck) string {
	ids := make([]string, len(checks))
	for i, c := range checks {
		ids[i] = c.KeyID
	}
	return strings.Join(ids, ", ")
}

// readHashKeys reads the hex-encoded HMAC keys from path, one per line,
// newest first ('#' starts a comment line). New secrets are hashed with
// the newest key; older ones still verify tokens issued under them, so a key
// can be rotated without invalidating any token. A key file that others can
// read is refused: whoever holds the key and a copy of the database can test
// guessed secrets offline. A missing file is an error wrapping
// fs.ErrNotExist.
func readHashKeys(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hash key file %s: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read hash key: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("hash key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("hash key %s is readable by others (mode %v): run chmod 600 on it", path, info.Mode().Perm())
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := hex.DecodeString(line)
		if err != nil || len(key) < hashKeyLen {
			return nil, fmt.Errorf("hash key file %s, line %d: want a key of at least %d bytes, hex-encoded", path, i+1, hashKeyLen)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("hash key file %s holds no key", path)
	}
	return keys, nil
}

func createHashKey(path string) ([][]byte, error) {
	key := make([]byte, hashKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate hash key: %w", err)
	}
	if err := writeSecretFile(path, hex.EncodeToString(key)+"\n"); err != nil {
		return nil, fmt.Errorf("write hash key: %w", err)
	}
	return [][]byte{key}, nil
}

// writeSecretFile writes data to a new file readable only by its owner and
// syncs it. It refuses to overwrite an existing file.
func writeSecretFile(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
