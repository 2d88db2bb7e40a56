// Command tokend is the central API-token service. `tokend serve` runs it;
// `tokend recover-root`, run while no server uses the data directory, mints
// a new unlimited full-access admin token when every admin credential is
// lost. `tokend <command> -help` lists a command's flags, each with a
// TOKEND_* environment twin.
package main
