#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a green test suite: installs everything the tests
# drive for real (sshd, tmux, node + the official MCP SDK, ...), builds, and runs every test.
#   SMCP_SANITIZE=asan|tsan scripts/test.sh   the same suite under sanitizers
#   extra arguments go to ctest (e.g. -L unit, -R http)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh" --test
"$root/tests/e2e/install.sh"
build_dir="$("$root/scripts/build.sh" | tail -n 1)"
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j2 "$@"
