#!/usr/bin/env bash
# Runs the official MCP conformance suite (plus the Inspector CLI and raw Streamable HTTP probes)
# against `sandbox-mcp serve --http` and enforces tests/conformance/expected-failures.yml.
#   tests/conformance/run.sh [SANDBOX_MCP_BINARY]      (default: $SANDBOX_MCP_BIN, else build/...)
# Uses ../shared/tools/mcp-conformance/run-conformance.sh next to the checkout (override with
# SMCP_CONFORMANCE_SCRIPT). That script installs its pinned tools from npm on first use
# (into $MCPCONF_HOME, default ~/.cache/mcp-conformance). Exit: the conformance script's status;
# 77 (ctest: skipped) only when the conformance script does not exist.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${SANDBOX_MCP_BIN:-$root/build/mcp-server/app/sandbox-mcp}}"
script="${SMCP_CONFORMANCE_SCRIPT:-$root/../shared/tools/mcp-conformance/run-conformance.sh}"

if [[ ! -e "$script" ]]; then
  echo "SKIP: the conformance script is not there: $script (expected at ../shared/tools/mcp-conformance" \
       "next to the repository checkout; set SMCP_CONFORMANCE_SCRIPT to use another copy)"
  exit 77
fi
if [[ ! -x "$bin" ]]; then
  echo "FAIL: sandbox-mcp binary not found or not executable: $bin (build it with scripts/build.sh)" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/smcp-conformance.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and logs "listening on http://127.0.0.1:PORT/mcp".
"$bin" serve --http 127.0.0.1:0 --state-dir "$work/state" --log-level info 2>"$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(grep -o 'listening on http://[^ ]*' "$work/server.log" 2>/dev/null | head -n 1 | sed 's/^listening on //')"
  [[ -n "$url" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$url" ]]; then
  echo "FAIL: the server did not start; its log:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "server: $url (pid $server_pid)"

"$script" --url "$url" --expected-failures "$here/expected-failures.yml" -o "$work/results"
rc=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "FAIL: the server died during the conformance run; its log:" >&2
  tail -n 50 "$work/server.log" >&2
  exit 1
fi
if [[ $rc -ne 0 ]]; then
  echo "FAIL: conformance exit code $rc (see the summary above); last server log lines:" >&2
  tail -n 30 "$work/server.log" >&2
  for f in "$work"/results/conformance.log; do [[ -f "$f" ]] && sed -n '/Baseline\|Unexpected\|Stale/,$p' "$f" >&2; done
else
  echo "PASS: every probe passes and the failures are exactly those of tests/conformance/expected-failures.yml"
fi
exit $rc
