package service

import "fmt"

// CheckActions reports what is wrong with a list of action ids that a caller
// will later pass to Introspect (a forward-auth route table, say), so that
// such a list can be refused when it is configured rather than on every
// call: at most as many ids as one Introspect call accepts, each well formed
// (segments of letters, digits, '_', ':' and '-' separated by single dots,
// at least a subject and a verb, at most 200 characters). It returns nil
// when the list is acceptable.
func CheckActions(ids []string) error {
	if len(ids) > maxActionsPerCall {
		return fmt.Errorf("at most %d actions (got %d)", maxActionsPerCall, len(ids))
	}
	for _, id := range ids {
		if msg := checkActionID(id); msg != "" {
			return fmt.Errorf("action %q: %s", id, msg)
		}
	}
	return nil
}
