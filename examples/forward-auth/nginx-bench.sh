#!/usr/bin/env bash
# Requests per second through nginx with and without auth_request to tokend,
# on this machine, in interleaved rounds, with the README's nginx block.
#
#   bash examples/forward-auth/nginx-bench.sh [rounds] [seconds per run]
#
# Needs nginx, wrk, curl and python3 (apt-get install -y nginx wrk curl).
# Three nginx processes of one worker each: the README's block (auth_request
# to tokend, then the upstream), the same block without auth_request, and the
# upstream itself (a fixed 200 answer). wrk (1 thread, 32 connections) loads
# the two front ports in turn, alternating which goes first, and the script
# prints each round's ratio and their median: on a machine shared with other
# work, the per-round ratio is steadier than either throughput.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
secs=${2:-4}

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }

go build -o "$work/tokend" ./cmd/tokend
tokend_port=$(free_port)
"$work/tokend" serve -grpc-addr 127.0.0.1:0 -http-addr "127.0.0.1:$tokend_port" -data-dir "$work/data" \
	-root-token-file "$work/root" -auth-routes examples/forward-auth/routes.yaml -log-level warn 2>"$work/tokend.log" &
pids+=($!)
wait_port "$tokend_port"
root=$(cat "$work/root")
create() {
	curl -sf -H "Authorization: Bearer $root" -d "$1" "http://127.0.0.1:$tokend_port/v1/tokens" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}
proxy=$(create '{"name":"nginx","kind":"TOKEN_KIND_ADMIN","type":"TOKEN_TYPE_CUSTOM","permissions":["tokend.token.introspect"]}')
reader=$(create '{"name":"reader","type":"TOKEN_TYPE_READ_ONLY"}')

with_port=$(free_port) without_port=$(free_port) upstream_port=$(free_port)
# The README's block, as the tests run it.
block=$(awk '/<!-- forward-auth nginx:/{on=1; next} on && /^```nginx/{inside=1; next} inside && /^```/{exit} inside' README.md)
block=${block//"listen 8000;"/"listen 127.0.0.1:$with_port;"}
block=${block//"127.0.0.1:8080"/"127.0.0.1:$tokend_port"}
block=${block//"127.0.0.1:3000"/"127.0.0.1:$upstream_port"}
block=${block//"tkda_REPLACE_WITH_THE_PROXY_TOKEN"/"$proxy"}
# The same block without auth_request (and what only serves it), for the
# comparison.
plain=$(grep -v -e auth_request -e '\$token_' <<<"$block")
plain=${plain//"listen 127.0.0.1:$with_port;"/"listen 127.0.0.1:$without_port;"}
start_nginx() { # name, server blocks
	mkdir -p "$work/$1"
	cat >"$work/$1/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/$1/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/$1/client_body;
    proxy_temp_path $work/$1/proxy;
    fastcgi_temp_path $work/$1/fastcgi;
    uwsgi_temp_path $work/$1/uwsgi;
    scgi_temp_path $work/$1/scgi;
$2
}
EOF
	nginx -e stderr -p "$work/$1" -c "$work/$1/nginx.conf" 2>"$work/$1.log" &
	pids+=($!)
}
start_nginx upstream "server { listen 127.0.0.1:$upstream_port; location / { return 200 \"from upstream\\n\"; } }"
start_nginx with "$block"
start_nginx without "$plain"
wait_port "$upstream_port"; wait_port "$with_port"; wait_port "$without_port"

url=/api/articles
for port in "$with_port" "$without_port"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $reader" "http://127.0.0.1:$port$url")
	[ "$code" = 200 ] || { echo "port $port answers $code, want 200" >&2; cat "$work"/*.log >&2; exit 1; }
done

rps() { wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $reader" "http://127.0.0.1:$1$url" | awk '/Requests\/sec/{print $2} /Non-2xx/{print "non-2xx answers" > "/dev/stderr"; exit 1}'; }
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t1 -c32 -d${secs}s, $rounds rounds"
ratios=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then a=$(rps "$with_port"); b=$(rps "$without_port"); else b=$(rps "$without_port"); a=$(rps "$with_port"); fi
	ratio=$(python3 -c "print(f'{$a/$b:.2f}')")
	ratios+=("$ratio")
	printf 'round %d: with auth_request %8.0f req/s, without %8.0f req/s, ratio %s\n' "$r" "$a" "$b" "$ratio"
done
python3 -c "import statistics,sys; print('median per-round ratio (with / without auth_request):', f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "${ratios[@]}"
