#!/usr/bin/env bash
# Installs the pinned real clients for the end-to-end tests (npm ci from the committed lock file):
# the official MCP TypeScript SDK and Claude Code's CLI. Does nothing when both are there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
installed() { # name -> the installed version, or nothing
  node -p "try { require('./node_modules/$1/package.json').version } catch { '' }" 2>/dev/null || true
}
wanted() { node -p "require('./package.json').dependencies['$1']"; }
missing=()
for pkg in @modelcontextprotocol/sdk @anthropic-ai/claude-code; do
  [[ "$(installed "$pkg")" == "$(wanted "$pkg")" ]] || missing+=("$pkg@$(wanted "$pkg")")
done
# Claude Code's CLI is a native binary shipped in a per-platform package.
if [[ ${#missing[@]} -eq 0 ]] && ! node_modules/.bin/claude --version >/dev/null 2>&1; then
  missing+=("claude binary")
fi
if ((${#missing[@]})); then
  echo "e2e: installing ${missing[*]}" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
