#!/usr/bin/env bash
# Runs one end-to-end test file with node's test runner (SANDBOX_MCP_BIN: the server binary).
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$dir/install.sh"
exec node --test --test-reporter=spec "$@"
