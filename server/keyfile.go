package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// hashKeyLen is the size of a generated hash key.
const hashKeyLen = 32

// loadOrCreateHashKeys reads the hex-encoded HMAC keys from path, one per
// line, newest first ('#' starts a comment line), creating the file (mode
// 0600) with one random key if it does not exist. New secrets are hashed
// with the newest key; older ones still verify tokens issued under them, so
// a key can be rotated without invalidating any token. A key file that
// others can read is refused: whoever holds the key and a copy of the
// database can test guessed secrets offline.
func loadOrCreateHashKeys(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createHashKey(path)
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
