package client

import "hash/crc32"

// The secret format, checked offline so that a malformed string costs no
// call: <prefix>_<43 base62 characters><checksum>, where the checksum is the
// CRC-32 (IEEE) of "<prefix>_<body>" written as 6 base62 digits. tokend's
// service package holds the generating side; this is a reading of the same
// format, kept here so that backends do not import the server.
const (
	secretBodyLen = 43
	checksumLen   = 6
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

var base62Value = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(base62); i++ {
		v[base62[i]] = int8(i)
	}
	return v
}()

var crcTable = crc32.MakeTable(crc32.IEEE)

// wellFormed reports whether s is a well-formed API token secret with this
// prefix: right prefix, length, alphabet and checksum. It does not allocate.
func wellFormed(prefix, s string) bool {
	head := len(prefix) + 1
	if len(s) != head+secretBodyLen+checksumLen || s[:len(prefix)] != prefix || s[len(prefix)] != '_' {
		return false
	}
	var sum uint64
	for i := head; i < len(s); i++ {
		v := base62Value[s[i]]
		if v < 0 {
			return false
		}
		if i >= head+secretBodyLen {
			sum = sum*62 + uint64(v)
		}
	}
	crc := ^uint32(0)
	for i := 0; i < head+secretBodyLen; i++ {
		crc = crcTable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return sum == uint64(^crc)
}

// maxActionLen bounds an action id, as tokend does.
const maxActionLen = 200

// validAction reports whether id reads <subject>.<verb> in tokend's action
// grammar: letters, digits, '_', ':', '-', with non-empty '.'-separated
// segments, at most 200 characters. A cached answer is computed here, so
// the check tokend would make is made here too.
func validAction(id string) bool {
	if id == "" || len(id) > maxActionLen {
		return false
	}
	dots, seg := 0, 0
	for i := 0; i < len(id); i++ {
		switch actionClass[id[i]] {
		case actionChar:
			seg++
		case actionDot:
			if seg == 0 {
				return false
			}
			dots, seg = dots+1, 0
		default:
			return false
		}
	}
	return seg > 0 && dots > 0
}

// actionClass sorts bytes for validAction in one table lookup each.
const (
	actionInvalid = iota
	actionChar
	actionDot
)

var actionClass = func() (c [256]uint8) {
	for b := range c {
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == ':', b == '-':
			c[b] = actionChar
		case b == '.':
			c[b] = actionDot
		}
	}
	return c
}()

// verb is what follows the last '.' of an action id.
func verb(action string) string {
	for i := len(action) - 1; i >= 0; i-- {
		if action[i] == '.' {
			return action[i+1:]
		}
	}
	return action
}
