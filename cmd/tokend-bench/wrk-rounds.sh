#!/bin/sh
# wrk-rounds.sh measures tokend's REST calls with wrk, an HTTP load tool that
# shares no code with tokend. It runs ROUNDS rounds (default 5) of SECS
# seconds per measurement (default 4) with 1 wrk thread and 32 connections.
# In each round it starts each given tokend binary in turn on loopback ports
# in a scratch directory, creates an API token, measures REST introspect,
# GET /healthz, ListTokens (page of 10) and GetToken one after the other, and
# stops it: only one server runs at a time (two servers side by side skewed
# the figures of the first started, by up to a factor of two with the same
# binary in both places). With two binaries the first goes first in odd
# rounds. It prints each round's requests per second, the
# introspect / healthz ratio of each server and, with two binaries, the
# ratio of the first to the second per call.
#
# On a machine others share, absolute figures drift by a factor of two from
# one round to the next: judge the median of the per-round ratios.
#
#   cmd/tokend-bench/wrk-rounds.sh BINARY [BASELINE_BINARY]
#   ROUNDS=5 SECS=4 cmd/tokend-bench/wrk-rounds.sh /tmp/tokend-new /tmp/tokend-old
#
# Needs wrk (Debian package "wrk") and curl. The request log goes to a file,
# as it would in a deployment.
set -eu
rounds=${ROUNDS:-5} secs=${SECS:-4}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait; rm -rf "$work"' EXIT

. "$(dirname "$0")/start-tokend.sh"

# start NAME BINARY: starts a server with its files under $work/NAME.
start() { start_tokend "$work/$1" "$2"; }

stop() {
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
}

rate() { wrk -t1 -c32 -d"${secs}s" "$@" | sed -n 's/^Requests\/sec: *//p'; }

# measure NAME: one measurement of each call on server NAME, printed as
# "introspect healthz list get".
measure() {
	d="$work/$1"
	base=$(cat "$d/base")
	i=$(rate -s "$d/introspect.lua" "$base/v1/tokens:introspect")
	h=$(rate "$base/healthz")
	l=$(rate -s "$d/admin.lua" "$base/v1/tokens?page_size=10")
	g=$(rate -s "$d/admin.lua" "$base/v1/tokens/$(cat "$d/id")")
	echo "$i $h $l $g"
}

run() { start "$1" "$2"; measure "$1"; stop; }
echo "wrk 1 thread, 32 connections, ${secs}s per measurement; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
	if [ $# -gt 1 ]; then
		if [ $((r % 2)) -eq 1 ]; then a=$(run a "$1"); b=$(run b "$2"); else b=$(run b "$2"); a=$(run a "$1"); fi
		echo "$r $a $b" | awk '{
			printf "round %d  new: introspect %6.0f healthz %6.0f list %6.0f get %6.0f (introspect/healthz %.3f)\n", $1, $2, $3, $4, $5, $2/$3
			printf "         old: introspect %6.0f healthz %6.0f list %6.0f get %6.0f (introspect/healthz %.3f)\n", $6, $7, $8, $9, $6/$7
			printf "         new/old: introspect %.3f healthz %.3f list %.3f get %.3f\n", $2/$6, $3/$7, $4/$8, $5/$9 }'
	else
		echo "$r $(run a "$1")" | awk '{
			printf "round %d: introspect %6.0f healthz %6.0f list %6.0f get %6.0f (introspect/healthz %.3f)\n", $1, $2, $3, $4, $5, $2/$3 }'
	fi
done
