#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running server: installs the dependencies,
# builds, and serves MCP on stdio on the embedded default (the `local` host, SQLite state).
# Extra arguments go to `sandbox-mcp serve` (e.g. --http 127.0.0.1:8765).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
build_dir="$("$root/scripts/build.sh" | tail -n 1)"
echo "sandbox-mcp: serving MCP on stdio (logs on stderr; Ctrl-D to stop)" >&2
exec "$build_dir/mcp-server/app/sandbox-mcp" serve "$@"
