#!/usr/bin/env bash
# SSH benchmark (issue 5). Starts a real sshd on loopback (with generated host and client keys and
# its own ssh config; nothing outside a temp directory is touched) and prints, side by side:
#   - remote_bash {command: "true"} on that SSH host through the real `sandbox-mcp serve` over
#     stdio (a pipelined MCP client keeps 1 or 16 tools/call requests in flight),
#   - a fresh `ssh h0 true` per call (new TCP connection, handshake, auth),
#   - `ssh h0 true` multiplexed over an OpenSSH ControlMaster connection,
# each at concurrency 1 and 16: p50 and p95 latency (ms) and calls per second.
#
# With a fast shell (an empty ~/.bashrc) and a heavy one (200 ms, like an unguarded conda/pyenv
# init): the sessions get their own HOME, so the user's real ~/.bashrc is not touched. Ends with
# the issue-15 targets: heavy p50 within 2 ms of fast, >= 10x faster than OpenSSH ControlMaster on
# the heavy shell, fast p50 <= 3 ms.
#   SMCP_BUILD_DIR=...  build directory (default build-release, Release build)
#   CALLS=500 SSH_CALLS=60  calls per cell
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$root/scripts/install-deps.sh" --test
build_dir="$(SMCP_BUILD_TYPE="${SMCP_BUILD_TYPE:-Release}" SMCP_BUILD_DIR="${SMCP_BUILD_DIR:-$root/build-release}" \
  "$root/scripts/build.sh" | tail -n 1)"
bin="$build_dir/mcp-server/app/sandbox-mcp"
bench="$build_dir/tests/bench/ssh_bench"
"$bench" "$bin" --calls "${CALLS:-500}" --ssh-calls "${SSH_CALLS:-60}"
