package client

import (
	"github.com/tokend/tokend/internal/actionid"
	"github.com/tokend/tokend/internal/secretformat"
)

// wellFormed reports whether s is a well-formed API token secret with this
// prefix (right prefix, length, alphabet and checksum), checked offline so
// that a malformed string costs no call. It does not allocate.
func wellFormed(prefix, s string) bool { return secretformat.WellFormed(prefix, s) }

// validAction reports whether id reads <subject>.<verb> in tokend's action
// grammar (see internal/actionid). A cached answer is computed here, so the
// check tokend would make is made here too.
func validAction(id string) bool { return actionid.Valid(id) }

// verb is what follows the last '.' of an action id.
func verb(action string) string {
	for i := len(action) - 1; i >= 0; i-- {
		if action[i] == '.' {
			return action[i+1:]
		}
	}
	return action
}
