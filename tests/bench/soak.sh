#!/usr/bin/env bash
# Soak benchmark: CLIENTS clients (half over stdio, each with its own server; half over
# Streamable HTTP on one server) run mixed calls for SECONDS (foreground commands, background jobs
# followed with waiting and filtered reads, file windows, kills, malformed messages), checking
# every answer and every output line; the servers' RSS, open fds and threads are sampled every 5 s
# and compared between the minute after warm-up and the last minute. Prints the figures and
# "result: OK" (exit 0) or the failures (exit 1). Not part of ctest.
#   tests/bench/soak.sh [SECONDS (default 600)] [CLIENTS (default 16)]
# Uses the normal tree (scripts/build.sh: build/, RelWithDebInfo): a stability run, not a speed one.
# Clients and servers share the machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-600}"
clients="${2:-16}"
build_dir="$("$root/scripts/build.sh" | tail -n 1)"
work="$(mktemp -d "${TMPDIR:-/tmp}/smcp-soak.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "sandbox-mcp $("$build_dir/mcp-server/app/sandbox-mcp" --version | awk '{print $2}'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$build_dir/tests/bench/soak" "$build_dir/mcp-server/app/sandbox-mcp" "$work" "$seconds" "$clients" || status=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
