package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash/crc32"
	"strings"
	"sync"
	"testing"

	"github.com/tokend/tokend/storage"
)

func defaultFormat(t *testing.T) secretFormat {
	t.Helper()
	f, err := newSecretFormat(DefaultAPIPrefix, DefaultAdminPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSecretFormatAcceptsGenerated: parse accepts every generated secret,
// of the right kind, and secrets never repeat.
func TestSecretFormatAcceptsGenerated(t *testing.T) {
	f := defaultFormat(t)
	for _, c := range []struct {
		name   string
		kind   storage.Kind
		prefix string
	}{
		{"API", storage.KindAPI, "tkd_"},
		{"Admin", storage.KindAdmin, "tkda_"},
	} {
		t.Run(c.name, func(t *testing.T) {
			seen := make(map[string]bool, 1000)
			for i := 0; i < 1000; i++ {
				s, err := f.generate(c.kind)
				if err != nil {
					t.Fatal(err)
				}
				if seen[s] {
					t.Fatal("generate repeated a secret")
				}
				seen[s] = true
				if !strings.HasPrefix(s, c.prefix) {
					t.Fatalf("secret %q… lacks the prefix %q", s[:5], c.prefix)
				}
				// <prefix>_ + 43 base62 characters (≥ 256 bits) + 6 of checksum.
				rest := strings.TrimPrefix(s, c.prefix)
				if len(rest) != 43+6 {
					t.Fatalf("secret has %d characters after the prefix, want 49", len(rest))
				}
				for j := 0; j < len(rest); j++ {
					if !isBase62(rest[j]) {
						t.Fatalf("secret has %q at %d, outside base62", rest[j], j)
					}
				}
				if got := decodeBase62(rest[43:]); got != uint64(crc32.ChecksumIEEE([]byte(s[:len(s)-6]))) {
					t.Fatalf("checksum %d is not the CRC-32 of the prefix and body", got)
				}
				kind, ok := f.parse(s)
				if !ok || kind != c.kind {
					t.Fatalf("parse(generated) = %v, %v; want %v, true", kind, ok, c.kind)
				}
			}
		})
	}
}

// TestSecretFormatUsesTheWholeAlphabet: over many secrets every base62
// character turns up in the random part, so generation is not biased to a
// subset.
func TestSecretFormatUsesTheWholeAlphabet(t *testing.T) {
	f := defaultFormat(t)
	counts := map[byte]int{}
	for i := 0; i < 500; i++ {
		s, err := f.generate(storage.KindAPI)
		if err != nil {
			t.Fatal(err)
		}
		for j := 4; j < 4+43; j++ {
			counts[s[j]]++
		}
	}
	// 21,500 characters: each of 62 expected ~347 times.
	if len(counts) != 62 {
		t.Fatalf("%d distinct characters, want 62", len(counts))
	}
	for c, n := range counts {
		if n < 200 || n > 520 {
			t.Errorf("character %q appears %d times, expected about 347", c, n)
		}
	}
}

// TestSecretFormatRejectsMutations: every single-character change of a
// valid secret (substitution by any byte, deletion, insertion) is rejected.
func TestSecretFormatRejectsMutations(t *testing.T) {
	f := defaultFormat(t)
	for _, kind := range []storage.Kind{storage.KindAPI, storage.KindAdmin} {
		s, err := f.generate(kind)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(s); i++ {
			for b := 0; b < 256; b++ {
				if byte(b) == s[i] {
					continue
				}
				m := s[:i] + string([]byte{byte(b)}) + s[i+1:]
				if _, ok := f.parse(m); ok {
					t.Errorf("kind %v: parse accepted the secret with byte %d changed to %q", kind, i, byte(b))
				}
			}
			// A deletion or insertion changes the length, so it is never
			// a secret of the same kind; and since the checksum covers the
			// prefix, moving the prefix boundary ("tkd_" ↔ "tkda_") does
			// not make one of the other kind either.
			if k, ok := f.parse(s[:i] + s[i+1:]); ok {
				t.Errorf("kind %v: parse accepted the secret without byte %d, as kind %v", kind, i, k)
			}
			for _, b := range []byte{'0', 'a', 'Z', '_'} {
				if k, ok := f.parse(s[:i] + string([]byte{b}) + s[i:]); ok {
					t.Errorf("kind %v: parse accepted the secret with %q inserted at %d, as kind %v", kind, b, i, k)
				}
			}
		}
		// Neighbouring characters swapped (when they differ).
		for i := 0; i+1 < len(s); i++ {
			if s[i] == s[i+1] {
				continue
			}
			m := s[:i] + string([]byte{s[i+1], s[i]}) + s[i+2:]
			if _, ok := f.parse(m); ok {
				t.Errorf("kind %v: parse accepted the secret with bytes %d and %d swapped", kind, i, i+1)
			}
		}
	}
}

func TestSecretFormatRejectsNonSecrets(t *testing.T) {
	f := defaultFormat(t)
	for _, s := range []string{"", "_", "tkd", "tkd_", "tkda_", "tkd__", strings.Repeat("0", 53), "tkd_" + strings.Repeat("0", 49), "tkda_" + strings.Repeat("A", 49)} {
		if _, ok := f.parse(s); ok {
			t.Errorf("parse(%q) accepted", s)
		}
	}
}

func TestSecretFormatCustomPrefixes(t *testing.T) {
	f, err := newSecretFormat("acme", "acmeadmin")
	if err != nil {
		t.Fatal(err)
	}
	api, err := f.generate(storage.KindAPI)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := f.generate(storage.KindAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(api, "acme_") || !strings.HasPrefix(admin, "acmeadmin_") {
		t.Fatalf("secrets %q…, %q…: want the prefixes acme_ and acmeadmin_", api[:5], admin[:10])
	}
	if k, ok := f.parse(api); !ok || k != storage.KindAPI {
		t.Errorf("parse(api) = %v, %v", k, ok)
	}
	if k, ok := f.parse(admin); !ok || k != storage.KindAdmin {
		t.Errorf("parse(admin) = %v, %v", k, ok)
	}
	// The default format does not accept them, nor they it.
	if _, ok := defaultFormat(t).parse(api); ok {
		t.Error("the default format accepted an acme_ secret")
	}
	for _, bad := range [][2]string{{"", "tkda"}, {"tkd", ""}, {"TKD", "tkda"}, {"tk_d", "tkda"}, {"tkd", "tkd"}, {"tkd", "tkd-a"}, {strings.Repeat("a", 17), "tkda"}, {"tkd", "é"}} {
		if _, err := newSecretFormat(bad[0], bad[1]); err == nil {
			t.Errorf("newSecretFormat(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestHint(t *testing.T) {
	f := defaultFormat(t)
	s, err := f.generate(storage.KindAPI)
	if err != nil {
		t.Fatal(err)
	}
	got := hint(s)
	if want := "tkd_…" + s[len(s)-4:]; got != want {
		t.Errorf("hint = %q, want %q", got, want)
	}
	admin, err := f.generate(storage.KindAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hint(admin), "tkda_…"+admin[len(admin)-4:]; got != want {
		t.Errorf("hint = %q, want %q", got, want)
	}
}

func TestHasher(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	h, err := newHasher([][]byte{key})
	if err != nil {
		t.Fatal(err)
	}
	secret := "tkd_" + strings.Repeat("a", 49)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	want := m.Sum(nil)
	got := h.sum(secret)
	if !hmac.Equal(got[:], want) {
		t.Fatalf("sum = %x, want HMAC-SHA-256 %x", got, want)
	}
	// A long secret takes the other path.
	long := strings.Repeat("b", 300)
	m.Reset()
	m.Write([]byte(long))
	got = h.sum(long)
	if !hmac.Equal(got[:], m.Sum(nil)) {
		t.Fatal("sum of a long string is not its HMAC")
	}
	// Another key, another hash.
	other, err := newHasher([][]byte{[]byte(strings.Repeat("K", 32))})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := h.sum(secret), other.sum(secret); a == b {
		t.Error("two keys gave the same hash")
	}
	// Concurrent use is safe and consistent (run with -race).
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if got := h.sum(secret); !hmac.Equal(got[:], want) {
					t.Error("concurrent sum differs")
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := newHasher([][]byte{make([]byte, 31)}); err == nil {
		t.Error("newHasher accepted a 31-byte key")
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 26 || strings.ToLower(id) != id || strings.ContainsAny(id, "/=+") {
			t.Fatalf("id %q: want 26 lower-case URL-safe characters", id)
		}
		if seen[id] {
			t.Fatal("newID repeated an id")
		}
		seen[id] = true
	}
}

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// decodeBase62 reads digits in the order 0-9, A-Z, a-z.
func decodeBase62(s string) uint64 {
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'A' && c <= 'Z':
			d = uint64(c-'A') + 10
		default:
			d = uint64(c-'a') + 36
		}
		v = v*62 + d
	}
	return v
}
