# start-tokend.sh is sourced by the wrk scripts beside it; it runs nothing
# itself.
#
# start_tokend DIR BINARY starts BINARY's `serve` on loopback ports with its
# files under DIR (a fresh directory) and its request log in DIR/log, waits
# until it serves, and creates one read-only API token. It sets pid, base
# (the HTTP base URL), root (the admin secret), secret and id (the API
# token's), and writes DIR/base, DIR/id, and the wrk scripts
# DIR/introspect.lua (REST introspection of the token, asking for one
# action) and DIR/admin.lua (the admin credential, for admin calls).
# The servers log as a deployment does by default (info level, text): the
# scripts read the address from the "serving" line, and measure with the
# request log on.
unset TOKEND_LOG_LEVEL TOKEND_LOG_FORMAT

start_tokend() {
	rm -rf "$1"
	mkdir -p "$1"
	"$2" serve -data-dir "$1/data" -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 \
		-root-token-file "$1/root" -auth-failure-limit -1 2>"$1/log" &
	pid=$!
	for _ in $(seq 300); do
		grep -qs 'msg=serving' "$1/log" && [ -s "$1/root" ] && break
		sleep 0.1
	done
	addr=$(sed -n 's/.*msg=serving.* http=\([0-9.:]*\).*/\1/p' "$1/log" | head -1)
	if [ -z "$addr" ]; then
		echo "$2 did not report serving within 30 s:" >&2
		tail -5 "$1/log" >&2
		exit 1
	fi
	base="http://$addr"
	root=$(cat "$1/root")
	created=$(curl -sf -H "Authorization: Bearer $root" \
		-d '{"name":"wrk","kind":"TOKEN_KIND_API","type":"TOKEN_TYPE_READ_ONLY"}' "$base/v1/tokens")
	secret=$(printf '%s' "$created" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
	id=$(printf '%s' "$created" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
	echo "$base" >"$1/base"
	echo "$id" >"$1/id"
	cat >"$1/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"token":"$secret","actions":["api::article.article.find"]}'
wrk.headers["Authorization"] = "Bearer $root"
wrk.headers["Content-Type"] = "application/json"
LUA
	cat >"$1/admin.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $root"
LUA
}
