package service

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unsafe"

	"github.com/tokend/tokend/storage"
)

// A secret reads <prefix>_<body><checksum>: body is secretBodyLen base62
// characters (43 × log2(62) ≈ 256.03 bits of randomness) and checksum is the
// CRC-32 (IEEE) of "<prefix>_<body>" in checksumLen base62 characters, so
// that a typo or a random string is rejected without touching the store and
// secret scanners can recognise tokens offline. The prefix is inside the
// checksum so that adding or dropping a character of it (tkd_ ↔ tkda_)
// cannot turn a secret of one kind into a well-formed one of the other.
const (
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	secretBodyLen = 43
	checksumLen   = 6 // 62^6 > 2^32
	hintTailLen   = 4
	// maxPrefixLen bounds configurable prefixes.
	maxPrefixLen = 16
)

// base62Value maps a byte to its base62 digit, or -1.
var base62Value = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(base62); i++ {
		v[base62[i]] = int8(i)
	}
	return v
}()

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
	b := make([]byte, 0, len(prefix)+1+secretBodyLen+checksumLen)
	b = append(b, prefix...)
	b = append(b, '_')
	// Rejection sampling keeps every character uniform: bytes >= 248 (4 × 62)
	// are discarded.
	var buf [64]byte
	for n := 0; n < secretBodyLen; {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		for _, c := range buf {
			if c < 248 && n < secretBodyLen {
				b = append(b, base62[c%62])
				n++
			}
		}
	}
	b = appendChecksum(b, checksum(string(b)))
	return string(b), nil
}

func appendChecksum(b []byte, sum uint32) []byte {
	var digits [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		digits[i] = base62[sum%62]
		sum /= 62
	}
	return append(b, digits[:]...)
}

// parse reports the kind of a well-formed secret. It returns false for any
// string whose prefix, length, alphabet or checksum is wrong. It does not
// allocate.
func (f secretFormat) parse(s string) (storage.Kind, bool) {
	var kind storage.Kind
	var head int // length of "<prefix>_"
	switch {
	case strings.HasPrefix(s, f.apiPrefix) && len(s) > len(f.apiPrefix) && s[len(f.apiPrefix)] == '_':
		kind, head = storage.KindAPI, len(f.apiPrefix)+1
	case strings.HasPrefix(s, f.adminPrefix) && len(s) > len(f.adminPrefix) && s[len(f.adminPrefix)] == '_':
		kind, head = storage.KindAdmin, len(f.adminPrefix)+1
	default:
		return 0, false
	}
	rest := s[head:]
	if len(rest) != secretBodyLen+checksumLen {
		return 0, false
	}
	var sum uint64
	for i := 0; i < len(rest); i++ {
		v := base62Value[rest[i]]
		if v < 0 {
			return 0, false
		}
		if i >= secretBodyLen {
			sum = sum*62 + uint64(v)
		}
	}
	if sum != uint64(checksum(s[:head+secretBodyLen])) {
		return 0, false
	}
	return kind, true
}

// checksum is the CRC-32 (IEEE) of s. crc32 reads the string's own bytes
// (it neither keeps nor changes them): a []byte copy would allocate on every
// introspection, and a byte-at-a-time table loop costs as much as the
// secret's keyed hash.
func checksum(s string) uint32 {
	return crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// hint is what may be shown of a secret: its prefix and last characters.
func hint(secret string) string {
	i := strings.LastIndexByte(secret, '_')
	if i < 0 || len(secret) < hintTailLen {
		return ""
	}
	return secret[:i+1] + "…" + secret[len(secret)-hintTailLen:]
}
