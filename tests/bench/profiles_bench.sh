#!/usr/bin/env bash
# Per-command cost of each bubblewrap profile against a plain local run, in one run: through one MCP
# stdio session of `sandbox-mcp serve`, CALLS x `remote_bash {command: "true"}` plain and under
# restrictive, standard and permissive (interleaved, so load changes hit them alike); prints
# p50/p90 and the overhead over plain, with the load average.
#   tests/bench/profiles_bench.sh [BINARY]     (default: build/mcp-server/app/sandbox-mcp)
# Environment: CALLS (default 60).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$root/build/mcp-server/app/sandbox-mcp}"
[[ "$bin" == /* ]] || bin="$PWD/$bin"
[[ -x "$bin" ]] || { echo "profiles_bench: no binary at $bin" >&2; exit 2; }
command -v bwrap >/dev/null || { echo "profiles_bench: bwrap is not installed (apt-get install bubblewrap)" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/smcp-profiles-bench.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
SANDBOX_WORK_DIR="$work/work" python3 - "$bin" "$work/state" "${CALLS:-60}" <<'PY'
import json, subprocess, sys, time
binary, state, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = subprocess.Popen([binary, "serve", "--state-dir", state], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
n = 0
def request(method, params):
    global n
    n += 1
    p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": params}) + "\n").encode())
    p.stdin.flush()
    while True:
        m = json.loads(p.stdout.readline())
        if m.get("id") == n:
            return m
request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'); p.stdin.flush()
kinds = ["plain", "restrictive", "standard", "permissive"]
times = {k: [] for k in kinds}
for k in kinds:  # warm-up (the first confined call checks bwrap on the host)
    args = {"command": "true"} if k == "plain" else {"command": "true", "profile": k}
    request("tools/call", {"name": "remote_bash", "arguments": args})
for i in range(calls):
    for k in kinds:
        args = {"command": "true"} if k == "plain" else {"command": "true", "profile": k}
        t0 = time.perf_counter()
        r = request("tools/call", {"name": "remote_bash", "arguments": args})
        times[k].append((time.perf_counter() - t0) * 1000)
        assert r["result"]["structuredContent"]["exit_code"] == 0, r
p.stdin.close(); p.wait()
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
base = pct(times["plain"], 0.5)
print(f"{'remote_bash true, local':28} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'over plain':>11}")
for k in kinds:
    p50 = pct(times[k], 0.5)
    print(f"{k:28} {calls:>4} {p50:>8.2f} {pct(times[k], 0.9):>8.2f} {p50 - base:>+10.2f}")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
