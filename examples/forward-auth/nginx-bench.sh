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
# prints each round's ratios and their medians: on a machine shared with
# other work, the per-round ratio is steadier than either throughput.
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

# Server-side CPU time (ticks) of tokend and every nginx process: on a
# shared machine, the CPU one request costs hardly moves when neighbours take
# cores away, so its inverse ratio estimates the throughput ratio of an idle
# machine, where the throughputs themselves cannot.
server_pids=("${pids[@]}")
for pid in "${pids[@]}"; do server_pids+=($(pgrep -P "$pid" || true)); done
ticks() { for pid in "$@"; do cut -d')' -f2 "/proc/$pid/stat" | awk '{print $12 + $13}'; done | awk '{t += $1} END {print t}'; }
tokend_pid=${pids[0]}
hz=$(getconf CLK_TCK)
# run PORT prints the run's requests per second, and the server CPU µs per
# request, all processes and tokend's alone.
run() {
	local before tbefore out after tafter
	before=$(ticks "${server_pids[@]}") tbefore=$(ticks "$tokend_pid")
	out=$(wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $reader" "http://127.0.0.1:$1$url")
	after=$(ticks "${server_pids[@]}") tafter=$(ticks "$tokend_pid")
	if grep -q Non-2xx <<<"$out"; then echo "non-2xx answers on port $1" >&2; exit 1; fi
	awk -v cpu=$((after - before)) -v tcpu=$((tafter - tbefore)) -v hz="$hz" '/requests in/{n = $1} /Requests\/sec/{rps = $2}
		END {printf "%s %.1f %.1f\n", rps, cpu / hz * 1e6 / n, tcpu / hz * 1e6 / n}' <<<"$out"
}
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t1 -c32 -d${secs}s, $rounds rounds"
ratios=() cpu_ratios=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then a=($(run "$with_port")); b=($(run "$without_port")); else b=($(run "$without_port")); a=($(run "$with_port")); fi
	ratio=$(python3 -c "print(f'{${a[0]}/${b[0]}:.2f}')")
	cpu_ratio=$(python3 -c "print(f'{${b[1]}/${a[1]}:.2f}')")
	ratios+=("$ratio") cpu_ratios+=("$cpu_ratio")
	printf 'round %d: with auth_request %6.0f req/s %6.1f µs CPU/req (tokend %5.1f); without %6.0f req/s %6.1f µs CPU/req; throughput ratio %s, inverse CPU ratio %s\n' \
		"$r" "${a[0]}" "${a[1]}" "${a[2]}" "${b[0]}" "${b[1]}" "$ratio" "$cpu_ratio"
done
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }
echo "median per-round ratio, with / without auth_request: throughput $(median "${ratios[@]}"), inverse server CPU per request $(median "${cpu_ratios[@]}")"
