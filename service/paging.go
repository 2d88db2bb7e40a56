package service

import (
	"google.golang.org/protobuf/proto"
)

// maxListBytes is the size budget of one list answer (ListTokens,
// ListActions, ListAuditEvents), in bytes of its protobuf encoding: a page
// ends early rather than pass it, and says so with its next page token. The
// limits on each field keep one item far below it, but a thousand maximal
// tokens (1,000 permissions of 200 bytes each) would make a 200 MB answer;
// clients' default limit for a gRPC message is 4 MiB.
const maxListBytes = 1 << 20

// fitBudget returns how many of items, from the first, fit in the budget
// of a list answer; at least one, so that a listing always moves on.
func fitBudget[M proto.Message](items []M) int {
	total := 0
	for i, it := range items {
		// An entry of a repeated message field costs its size, its
		// length prefix and a tag: at most 6 bytes more at these sizes.
		total += proto.Size(it) + 6
		if total > maxListBytes && i > 0 {
			return i
		}
	}
	return len(items)
}
