// Command tokend is the central API-token service. `tokend serve` runs it;
// see `tokend serve -help` for the flags, each with a TOKEND_* environment
// twin.
package main
