#!/usr/bin/env bash
# Installs the pinned official MCP TypeScript SDK for the end-to-end tests (npm ci from the
# committed lock file); does nothing when it is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
want="$(node -p "require('./package.json').dependencies['@modelcontextprotocol/sdk']")"
have="$(node -p "try { require('./node_modules/@modelcontextprotocol/sdk/package.json').version } catch { '' }" 2>/dev/null || true)"
if [[ "$have" != "$want" ]]; then
  echo "e2e: installing @modelcontextprotocol/sdk@$want" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
