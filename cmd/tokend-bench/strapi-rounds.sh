#!/bin/sh
# strapi-rounds.sh compares tokend's REST introspection with Strapi's own
# token check, the way a team choosing between them would: one HTTP load
# client (wrk, 1 thread, 32 connections) for every call, both servers on
# this machine, rounds that interleave the calls, each call SECS seconds
# (default 5), ROUNDS rounds (default 5) after one unmeasured warm-up of
# each call. Both servers log every request as they do by default (tokend
# to a file).
#
# Calls measured, in this order in odd rounds and reversed in even ones:
#   tokend   POST /v1/tokens:introspect   an active read-only token, one action
#   tokend   GET  /healthz                tokend's cheapest route
#   strapi   GET  /api/articles           a valid read-only API token: the token check on a real request
#   strapi   GET  /api/articles           an unknown token: the token check alone (401)
#   strapi   GET  /_health                Strapi's cheapest route
# For each call it prints requests per second and the server's CPU time per
# request (from /proc, the server process only), then, per round, tokend's
# introspection divided by each Strapi call, and at the end the median of
# those per-round ratios. Ratios never mix two runs or two clients.
#
#   STRAPI_TOKEN=<read-only API token> cmd/tokend-bench/strapi-rounds.sh TOKEND_BINARY STRAPI_URL STRAPI_PID
#
# ../shared/peers/strapi-setup.sh (outside this repository) builds the
# Strapi 5 app; BENCHMARKS.md says how its token was made. Needs wrk and curl.
set -eu
tokend_bin=$1 strapi=$2 strapi_pid=$3
: "${STRAPI_TOKEN:?set STRAPI_TOKEN to a read-only Strapi API token}"
rounds=${ROUNDS:-5} secs=${SECS:-5}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait; rm -rf "$work"' EXIT

. "$(dirname "$0")/start-tokend.sh"
start_tokend "$work/tokend" "$tokend_bin"
cat >"$work/strapi-valid.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $STRAPI_TOKEN"
LUA
cat >"$work/strapi-unknown.lua" <<LUA
wrk.headers["Authorization"] = "Bearer 0000000000000000000000000000000000000000000000000000000000000000"
LUA

# Refuse to measure answers that are not the ones described above.
check() { # want, then curl arguments
	want=$1
	shift
	got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
	[ "$got" = "$want" ] || { echo "$*: HTTP $got, want $want" >&2; exit 1; }
}
check 200 -H "Authorization: Bearer $root" -d "{\"token\":\"$secret\"}" "$base/v1/tokens:introspect"
check 200 "$base/healthz"
check 200 -H "Authorization: Bearer $STRAPI_TOKEN" "$strapi/api/articles"
check 401 -H "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000" "$strapi/api/articles"
check 204 "$strapi/_health"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# one PID SCRIPT URL: "req/s cpu-µs-per-request" of one wrk measurement.
one() {
	p=$1 script=$2 url=$3
	before=$(ticks "$p")
	if [ -n "$script" ]; then
		out=$(wrk -t1 -c32 -d"${secs}s" -s "$script" "$url")
	else
		out=$(wrk -t1 -c32 -d"${secs}s" "$url")
	fi
	after=$(ticks "$p")
	reqs=$(printf '%s\n' "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
	rate=$(printf '%s\n' "$out" | sed -n 's/^Requests\/sec: *//p')
	echo "$rate $(((after - before) * 1000000 / hz / (reqs > 0 ? reqs : 1)))"
}

calls="ti th sv su sh"
measure() {
	case $1 in
	ti) one "$pid" "$work/tokend/introspect.lua" "$base/v1/tokens:introspect" ;;
	th) one "$pid" "" "$base/healthz" ;;
	sv) one "$strapi_pid" "$work/strapi-valid.lua" "$strapi/api/articles" ;;
	su) one "$strapi_pid" "$work/strapi-unknown.lua" "$strapi/api/articles" ;;
	sh) one "$strapi_pid" "" "$strapi/_health" ;;
	esac
}

# Node compiles Strapi's hot code during its first requests: every call is
# warmed up once, unmeasured, before the rounds.
for c in $calls; do
	measure "$c" >/dev/null
done
echo "wrk 1 thread, 32 connections, ${secs}s per call, $rounds rounds after one warm-up of each; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "columns: req/s and server CPU µs per request of tokend introspect, tokend /healthz, Strapi /api/articles (valid token), Strapi /api/articles (unknown token, 401), Strapi /_health"
for r in $(seq "$rounds"); do
	order=$calls
	[ $((r % 2)) -eq 0 ] && order=$(echo "$calls" | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}')
	for c in $order; do
		measure "$c" >"$work/$c"
	done
	line="$r"
	for c in $calls; do line="$line $(cat "$work/$c")"; done
	echo "$line" | tee -a "$work/rounds" | awk '{
		printf "round %d: %6.0f %4dµs | %6.0f %4dµs | %6.0f %4dµs | %6.0f %4dµs | %6.0f %4dµs\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
		printf "         tokend introspect / Strapi: valid token %.1f×, unknown token %.1f×, /_health %.1f×\n", $2/$6, $2/$8, $2/$10 }'
done
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf 'median per-round ratio, tokend introspect / Strapi: valid token %.1f×, unknown token %.1f×, /_health %.1f×\n' \
	"$(awk '{print $2/$6}' "$work/rounds" | median)" \
	"$(awk '{print $2/$8}' "$work/rounds" | median)" \
	"$(awk '{print $2/$10}' "$work/rounds" | median)"
printf 'median server CPU per request: tokend introspect %sµs, /healthz %sµs; Strapi valid %sµs, unknown %sµs, /_health %sµs\n' \
	"$(awk '{print $3}' "$work/rounds" | median)" "$(awk '{print $5}' "$work/rounds" | median)" \
	"$(awk '{print $7}' "$work/rounds" | median)" "$(awk '{print $9}' "$work/rounds" | median)" \
	"$(awk '{print $11}' "$work/rounds" | median)"
printf 'resident memory (VmRSS): tokend %s, Strapi %s\n' \
	"$(awk '/^VmRSS/ {print $2, $3}' "/proc/$pid/status")" "$(awk '/^VmRSS/ {print $2, $3}' "/proc/$strapi_pid/status")"
