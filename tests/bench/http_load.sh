#!/usr/bin/env bash
# HTTP load benchmark: builds a Release tree, starts `sandbox-mcp serve --http` on a free
# loopback port and drives it with tests/bench/http_load (a second process: N clients, each with its
# own MCP session and keep-alive connection, requests back to back). First it opens 1,000 idle
# sessions (kept open during the runs) and prints the server RSS before and after; then requests/s
# and p50/p99 latency for tools/list and for remote_bash `true` with 1, 16 and 64 concurrent clients;
# last, GET /healthz latency while 520 sockets trickle half-sent requests (slowloris).
#   tests/bench/http_load.sh [SECONDS_PER_RUN (default 5)] [IDLE_SESSIONS (default 1000)]
# Environment: SMCP_BUILD_DIR (default build-release); SMCP_BENCH_SERVER=PATH benchmarks another
# sandbox-mcp binary (e.g. an older build, to compare) with this tree's load generator;
# SMCP_SLOWLORIS_SOCKETS (default 520, 0 skips that phase). Not part of ctest. Client and server
# share the machine's cores, so the figures are a floor for a separate client machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-5}"
idle="${2:-1000}"
build_dir="$(SMCP_BUILD_TYPE=Release SMCP_BUILD_DIR="${SMCP_BUILD_DIR:-$root/build-release}" "$root/scripts/build.sh" | tail -n 1)"
bin="${SMCP_BENCH_SERVER:-$build_dir/mcp-server/app/sandbox-mcp}"
work="$(mktemp -d "${TMPDIR:-/tmp}/smcp-bench-http.XXXXXX")"
# shellcheck source=tests/bench/http_server.sh
source "$root/tests/bench/http_server.sh"
start_http_server "$bin" --max-sessions $((idle + 1000)) --log-level info
echo "sandbox-mcp $("$bin" --version | awk '{print $2}') at http://127.0.0.1:$port/mcp (pid $pid); $(nproc) cores;" \
     "${seconds}s per run after 0.5s warm-up"
"$build_dir/tests/bench/http_load" "$port" "$pid" "$seconds" "$idle" "" "${SMCP_SLOWLORIS_SOCKETS:-520}"
