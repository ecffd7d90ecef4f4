#!/usr/bin/env bash
# Local-host benchmark (issue 3): builds the project and runs tests/bench/local_bench against the
# real stdio server. Prints round-trip latency, background output throughput, memory per job and
# the cost of reading the tail of a 2 GB file. Needs ~2.5 GB free in $TMPDIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$root/scripts/install-deps.sh"
build_dir="$(SMCP_BUILD_TYPE=Release SMCP_BUILD_DIR="${SMCP_BUILD_DIR:-$root/build-release}" "$root/scripts/build.sh" | tail -n 1)"
exec "$build_dir/tests/bench/local_bench" "$build_dir/mcp-server/app/sandbox-mcp" "${TMPDIR:-/tmp}/smcp-bench-local"
