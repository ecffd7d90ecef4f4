#!/bin/sh
# Starts the built sandbox-mcp on stdio for an MCP client (the repository's .mcp.json runs this),
# from any directory: commands on the `local` host run in the directory the client started in.
#   SMCP_BUILD_DIR   the build directory (default: <repository>/build)
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SMCP_BUILD_DIR:-$root/build}/mcp-server/app/sandbox-mcp"
if [ ! -x "$bin" ]; then
  echo "sandbox-mcp is not built yet ($bin is missing): run $root/scripts/build.sh first" >&2
  exit 1
fi
exec "$bin" serve "$@"
