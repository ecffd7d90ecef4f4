#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running server: installs the dependencies,
# builds, and serves MCP on stdio on the embedded default (the `local` host, SQLite state).
# Extra arguments go to `sandbox-mcp serve` (e.g. --http 127.0.0.1:8765).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
# Only the server (and the podman-srun it ships), with exactly scripts/test.sh's flags: the test
# command run after this one reuses every object built here.
build_dir="$(SMCP_TARGETS=sandbox-mcp "$root/scripts/build.sh" -DSMCP_WERROR=ON | tail -n 1)"
echo "sandbox-mcp: serving MCP on stdio (logs on stderr; Ctrl-D to stop)" >&2
exec "$build_dir/mcp-server/app/sandbox-mcp" serve "$@"
