package service

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns a random, opaque token id: 128 bits, 26 lower-case base32
// characters, safe in a URL path.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return strings.ToLower(idEncoding.EncodeToString(b[:])), nil
}
