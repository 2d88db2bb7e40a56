package storage_test

import (
	"testing"

	"github.com/tokend/tokend/storage"
)

func TestNameKey(t *testing.T) {
	same := [][2]string{
		{"Root", "ROOT"},
		{"Root", "ＲＯＯＴ"},              // full-width forms
		{"Straße", "STRASSE"},         // full case folding, not just lower case
		{"ﬁle", "FILE"},               // compatibility ligature
		{"\u2126mega", "\u03c9MEGA"},  // ohm sign and small omega
		{"e\u0301cole", "\u00e9cole"}, // combining accent and precomposed
	}
	for _, c := range same {
		if a, b := storage.NameKey(c[0]), storage.NameKey(c[1]); a != b {
			t.Errorf("NameKey(%q) = %q, NameKey(%q) = %q: want the same key", c[0], a, c[1], b)
		}
	}
	different := [][2]string{
		{"Root", "Rooot"},
		{"Root", "Röot"},
	}
	for _, c := range different {
		if storage.NameKey(c[0]) == storage.NameKey(c[1]) {
			t.Errorf("NameKey(%q) = NameKey(%q): want different keys", c[0], c[1])
		}
	}
}
