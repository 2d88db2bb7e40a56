package secretformat

import (
	"hash/crc32"
	"unsafe"
)

const (
	// Base62 is the alphabet of the body and the checksum, in digit order.
	Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// BodyLen is the number of random base62 characters.
	BodyLen = 43
	// ChecksumLen is the number of base62 digits of the checksum (62^6 > 2^32).
	ChecksumLen = 6
)

// digit maps a byte to its base62 value, or -1.
var digit = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(Base62); i++ {
		v[Base62[i]] = int8(i)
	}
	return v
}()

// WellFormed reports whether s is a well-formed secret with this prefix:
// the prefix and '_', then BodyLen base62 characters, then their checksum.
func WellFormed(prefix, s string) bool {
	head := len(prefix) + 1
	if len(s) != head+BodyLen+ChecksumLen || s[:len(prefix)] != prefix || s[len(prefix)] != '_' {
		return false
	}
	var sum uint64
	for i := head; i < len(s); i++ {
		v := digit[s[i]]
		if v < 0 {
			return false
		}
		if i >= head+BodyLen {
			sum = sum*62 + uint64(v)
		}
	}
	return sum == uint64(Checksum(s[:head+BodyLen]))
}

// Checksum is the CRC-32 (IEEE) of s. crc32 reads the string's own bytes (it
// neither keeps nor changes them): a []byte copy would allocate on every
// introspection, and a byte-at-a-time table loop costs as much as the
// secret's keyed hash.
func Checksum(s string) uint32 {
	return crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// AppendChecksum appends sum as ChecksumLen base62 digits to b.
func AppendChecksum(b []byte, sum uint32) []byte {
	var digits [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		digits[i] = Base62[sum%62]
		sum /= 62
	}
	return append(b, digits[:]...)
}
