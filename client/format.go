package client

import "github.com/tokend/tokend/internal/secretformat"

// wellFormed reports whether s is a well-formed API token secret with this
// prefix (right prefix, length, alphabet and checksum), checked offline so
// that a malformed string costs no call. It does not allocate.
func wellFormed(prefix, s string) bool { return secretformat.WellFormed(prefix, s) }

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
