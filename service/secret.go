package service

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/tokend/tokend/internal/secretformat"
	"github.com/tokend/tokend/storage"
)

// Secrets follow internal/secretformat; this file adds the prefixes of the
// two kinds, generation, and what of a secret may be shown.
const (
	hintTailLen = 4
	// maxPrefixLen bounds configurable prefixes.
	maxPrefixLen = 16
)

// secretFormat generates and recognises secrets for the two token kinds.
type secretFormat struct {
	apiPrefix, adminPrefix string
}

func newSecretFormat(apiPrefix, adminPrefix string) (secretFormat, error) {
	for _, p := range []string{apiPrefix, adminPrefix} {
		if err := checkPrefix(p); err != nil {
			return secretFormat{}, err
		}
	}
	if apiPrefix == adminPrefix {
		return secretFormat{}, errors.New("the API and admin token prefixes must differ")
	}
	return secretFormat{apiPrefix: apiPrefix, adminPrefix: adminPrefix}, nil
}

func checkPrefix(p string) error {
	if p == "" || len(p) > maxPrefixLen {
		return fmt.Errorf("token prefix %q: want 1 to %d characters", p, maxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("token prefix %q: only lower-case letters and digits are allowed", p)
		}
	}
	return nil
}

func (f secretFormat) prefix(k storage.Kind) string {
	if k == storage.KindAdmin {
		return f.adminPrefix
	}
	return f.apiPrefix
}

// generate returns a new random secret for a token of kind k.
func (f secretFormat) generate(k storage.Kind) (string, error) {
	prefix := f.prefix(k)
	b := make([]byte, 0, len(prefix)+1+secretformat.BodyLen+secretformat.ChecksumLen)
	b = append(b, prefix...)
	b = append(b, '_')
	// Rejection sampling keeps every character uniform: bytes >= 248 (4 × 62)
	// are discarded.
	var buf [64]byte
	for n := 0; n < secretformat.BodyLen; {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		for _, c := range buf {
			if c < 248 && n < secretformat.BodyLen {
				b = append(b, secretformat.Base62[c%62])
				n++
			}
		}
	}
	b = secretformat.AppendChecksum(b, secretformat.Checksum(string(b)))
	return string(b), nil
}

// parse reports the kind of a well-formed secret. It returns false for any
// string whose prefix, length, alphabet or checksum is wrong. Prefixes are
// letters and digits, so "<prefix>_" matches at most one of the two.
func (f secretFormat) parse(s string) (storage.Kind, bool) {
	switch {
	case secretformat.WellFormed(f.apiPrefix, s):
		return storage.KindAPI, true
	case secretformat.WellFormed(f.adminPrefix, s):
		return storage.KindAdmin, true
	}
	return 0, false
}

// hint is what may be shown of a secret: its prefix and last characters.
func hint(secret string) string {
	i := strings.LastIndexByte(secret, '_')
	if i < 0 || len(secret) < hintTailLen {
		return ""
	}
	return secret[:i+1] + "…" + secret[len(secret)-hintTailLen:]
}
