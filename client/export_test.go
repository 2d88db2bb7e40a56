package client

import "time"

// WithClock replaces the verifier's clock, for tests of ages.
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }
