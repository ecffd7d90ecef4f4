#!/usr/bin/env bash
# What clients that never authenticate can cost `sandbox-mcp serve --http`: starts the server with
# a bearer token on a free loopback port and runs tests/bench/http_flood against it. 512 sockets
# (the default --max-connections) without the token each send 4 MB of a declared 4 MiB body and
# stall; then 512 each send 60 KiB of header lines and stall. Prints the server's RSS and peak RSS
# before and after each phase, and the latency of an authenticated tools/list meanwhile.
#   tests/bench/http_flood.sh [CONNECTIONS (512)] [BYTES_SENT (4000000)]
# Environment: SMCP_BUILD_DIR (default build); SMCP_BENCH_SERVER=PATH runs another sandbox-mcp
# binary (e.g. an older build) against the same load. Not part of ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
connections="${1:-512}"
sent="${2:-4000000}"
build_dir="$(SMCP_BUILD_DIR="${SMCP_BUILD_DIR:-$root/build}" SMCP_TARGETS="sandbox-mcp http_flood" \
  "$root/scripts/build.sh" | tail -n 1)"
bin="${SMCP_BENCH_SERVER:-$build_dir/mcp-server/app/sandbox-mcp}"
work="$(mktemp -d "${TMPDIR:-/tmp}/smcp-bench-flood.XXXXXX")"
# shellcheck source=tests/bench/http_server.sh
source "$root/tests/bench/http_server.sh"
token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" >"$work/token"
chmod 600 "$work/token"
ulimit -n "$(ulimit -Hn)"
start_http_server "$bin" --auth-token-file "$work/token" --log-level info
echo "sandbox-mcp $("$bin" --version | awk '{print $2}') at http://127.0.0.1:$port/mcp (pid $pid), a token" \
     "required; $(nproc) cores; $connections connections per phase"
"$build_dir/tests/bench/http_flood" "$port" "$pid" "$token" "$connections" "$sent"
