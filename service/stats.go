package service

import (
	"time"

	"github.com/tokend/tokend/storage"
)

// ExpiringWindow is how far ahead Stats counts tokens about to expire.
const ExpiringWindow = 7 * 24 * time.Hour

// TokenClass is a kind and type of token.
type TokenClass struct {
	Kind storage.Kind
	Type storage.Type
}

// Stats is a summary of the service's state, for metrics.
type Stats struct {
	// Tokens counts the indexed tokens by kind and type.
	Tokens map[TokenClass]int
	// Expiring counts the tokens that are still valid but expire within
	// ExpiringWindow.
	Expiring int
	// LastFlush is when last-use times were last written to the store
	// without error (or, before the first flush, when the service started).
	LastFlush time.Time
	// DampedAddrs counts the client addresses whose failed
	// authentications are being refused with ResourceExhausted.
	DampedAddrs int
}

// Stats summarises the service at now. It walks the whole index, so it is
// meant for a metrics scrape, not a request path.
func (s *Service) Stats(now time.Time) Stats {
	st := Stats{Tokens: make(map[TokenClass]int), LastFlush: time.Unix(0, s.lastFlush.Load())}
	soon := now.Add(ExpiringWindow).UnixNano()
	s.index.mu.RLock()
	for _, e := range s.index.byID {
		st.Tokens[TokenClass{e.meta.kind, e.meta.typ}]++
		if e.expire != 0 && e.expire > now.UnixNano() && e.expire <= soon {
			st.Expiring++
		}
	}
	s.index.mu.RUnlock()
	st.DampedAddrs = s.failures.damped(now)
	return st
}
