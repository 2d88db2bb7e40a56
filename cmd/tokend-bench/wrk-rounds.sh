#!/bin/sh
# wrk-rounds.sh measures tokend's REST calls with wrk, an HTTP load tool that
# shares no code with tokend: it starts the given tokend binary on loopback
# ports in a scratch directory, then runs ROUNDS rounds in which each REST call
# measured (introspect, ListTokens, GetToken) alternates with GET /healthz on
# the same server, and prints every round's requests per second and its ratio
# to the /healthz round beside it. Throughput on a shared machine drifts, so
# judge the median of the per-round ratios, not the absolute figures.
#
#   cmd/tokend-bench/wrk-rounds.sh BINARY [ROUNDS] [SECONDS]
#
# Needs wrk (Debian package "wrk") and curl. Settings: 1 wrk thread, 32
# connections, as few other processes as the machine allows.
set -eu
bin=$1 rounds=${2:-5} secs=${3:-4}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
# Both ports are picked by the kernel (:0); tokend logs what it bound. The
# request log goes to a file, as it would in a deployment.
"$bin" serve -data-dir "$dir/data" -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 \
	-root-token-file "$dir/root" -auth-failure-limit -1 2>"$dir/log" &
pid=$!
for _ in $(seq 300); do
	grep -q 'msg=serving' "$dir/log" && [ -s "$dir/root" ] && break
	sleep 0.1
done
http=$(sed -n 's/.*msg=serving.* http=\([0-9.:]*\).*/\1/p' "$dir/log" | head -1)
root=$(cat "$dir/root")
base="http://$http"
created=$(curl -sf -H "Authorization: Bearer $root" -d '{"name":"wrk","kind":"TOKEN_KIND_API","type":"TOKEN_TYPE_READ_ONLY"}' "$base/v1/tokens")
secret=$(printf '%s' "$created" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
id=$(printf '%s' "$created" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
cat >"$dir/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"token":"$secret"}'
wrk.headers["Authorization"] = "Bearer $root"
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$dir/admin.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $root"
LUA
rate() { wrk -t1 -c32 -d"${secs}s" "$@" | sed -n 's/^Requests\/sec: *//p'; }
for r in $(seq "$rounds"); do
	i=$(rate -s "$dir/introspect.lua" "$base/v1/tokens:introspect")
	h=$(rate "$base/healthz")
	l=$(rate -s "$dir/admin.lua" "$base/v1/tokens?page_size=10")
	g=$(rate -s "$dir/admin.lua" "$base/v1/tokens/$id")
	h2=$(rate "$base/healthz")
	awk -v r="$r" -v i="$i" -v h="$h" -v l="$l" -v g="$g" -v h2="$h2" 'BEGIN {
		printf "round %d: introspect %.0f healthz %.0f ratio %.3f | list %.0f get %.0f healthz %.0f list/healthz %.3f get/healthz %.3f\n",
			r, i, h, i/h, l, g, h2, l/h2, g/h2 }'
done
