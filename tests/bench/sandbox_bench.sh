#!/usr/bin/env bash
# Sandbox benchmark: through one MCP stdio session of `sandbox-mcp serve` (a tiny line-delimited
# JSON-RPC client in python3), measures
#   (a) sandbox_new wall time (SAMPLES creates, each followed by a sandbox_rm, also timed),
#   (b) remote_bash {sandbox, command: "true"} p50 over CALLS calls,
#   (c) `podman exec CONTAINER true` run by hand, CALLS times, p50,
# and prints them side by side with the load average. Needs podman and a built image
# (`sandbox-mcp image build`). Everything it makes (a temp git repository, the sandboxes, the
# state directory) is removed at the end.
#   tests/bench/sandbox_bench.sh [BINARY]     (default: build/mcp-server/app/sandbox-mcp)
# Environment: SAMPLES (default 5), CALLS (default 30), IMAGE (default localhost/sandbox-mcp:latest).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$root/build/mcp-server/app/sandbox-mcp}"
[[ "$bin" == /* ]] || bin="$PWD/$bin"
image="${IMAGE:-localhost/sandbox-mcp:latest}"
[[ -x "$bin" ]] || { echo "sandbox_bench: no binary at $bin (build it, or pass its path)" >&2; exit 2; }
command -v podman >/dev/null || { echo "sandbox_bench: podman is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "sandbox_bench: python3 is not installed" >&2; exit 2; }
podman image exists "$image" || { echo "sandbox_bench: image $image is missing: run '$bin image build'" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/smcp-sandbox-bench.XXXXXX")"
work="$(cd "$work" && pwd -P)"
repo="$work/repo"
cleanup() {
  # The client removes its sandboxes; this catches what an interrupted run left behind.
  if [[ -f "$repo/.git/sandbox-mcp/sandboxes.sqlite" ]]; then
    for n in $(python3 - "$repo/.git/sandbox-mcp/sandboxes.sqlite" <<'PY' 2>/dev/null
import sqlite3, sys
for (name,) in sqlite3.connect(sys.argv[1]).execute("select name from sandboxes"):
    print(name)
PY
    ); do
      "$bin" --repo_base "$repo" rm -n "$n" --force >/dev/null 2>&1 || true
    done
  fi
  rm -rf -- "$work"
}
trap cleanup EXIT

mkdir -p "$repo" "$work/state"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid commit -q --allow-empty -m init

PYTHONPATH="$root/scripts" python3 - "$bin" "$repo" "$work/state" "$image" "${SAMPLES:-5}" "${CALLS:-30}" <<'PY'
import json, os, statistics, subprocess, sys, time
from mcp_stdio import StdioClient

binary, repo, state, image, samples, calls = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])

client = StdioClient([binary, "serve", "--state-dir", state], cwd=repo, stderr=subprocess.DEVNULL)

def rpc(method, params):
    try:
        msg = client.request(method, params)  # notifications (progress, logging) skipped
    except RuntimeError as e:
        sys.exit(f"sandbox_bench: {e}")
    if "error" in msg:
        sys.exit(f"sandbox_bench: {method}: {msg['error']}")
    return msg["result"]

def call(name, arguments):
    t0 = time.perf_counter()
    result = rpc("tools/call", {"name": name, "arguments": arguments})
    ms = (time.perf_counter() - t0) * 1000
    if result.get("isError"):
        sys.exit(f"sandbox_bench: {name} failed: {json.dumps(result.get('content'))[:2000]}")
    return result.get("structuredContent", {}), ms

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

client.initialize("sandbox-bench", "2025-06-18")

load_before = loadavg()
print(f"sandbox-mcp: {binary}")
print(f"image: {image}; {os.cpu_count()} cores; load average before: {load_before}")
podman = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
print(f"{podman}")
print()

# (a) sandbox_new, each followed by sandbox_rm
new_ms, rm_ms = [], []
for i in range(samples):
    name = f"bench{i + 1}"
    s, ms = call("sandbox_new", {"name": name, "branch": f"bench-{i + 1}"})
    new_ms.append(ms)
    r, rms = call("sandbox_rm", {"name": name})
    rm_ms.append(rms)
    print(f"sandbox_new #{i + 1}: {ms:7.0f} ms    sandbox_rm: {rms:6.0f} ms")
print()

# (b) remote_bash {sandbox} and (c) podman exec, on one sandbox
s, _ = call("sandbox_new", {"name": "bench"})
container = s["container"]
_, warm = call("remote_bash", {"sandbox": "bench", "command": "true"})  # first call: the host is made
bash_ms = []
for _ in range(calls):
    out, ms = call("remote_bash", {"sandbox": "bench", "command": "true"})
    if out.get("exit_code") != 0:
        sys.exit(f"sandbox_bench: remote_bash true exited {out.get('exit_code')}")
    bash_ms.append(ms)
subprocess.run(["podman", "exec", container, "true"], check=True)  # warm-up, not counted
exec_ms = []
for _ in range(calls):
    t0 = time.perf_counter()
    subprocess.run(["podman", "exec", container, "true"], check=True)
    exec_ms.append((time.perf_counter() - t0) * 1000)
call("sandbox_rm", {"name": "bench"})
load_after = loadavg()

def p(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]

print(f"{'what':44} {'n':>3} {'p50 ms':>8} {'min ms':>8} {'p90 ms':>8} {'max ms':>8}")
rows = [
    ("sandbox_new (MCP, clone+container+tmux)", new_ms),
    ("sandbox_rm (MCP)", rm_ms),
    ('remote_bash {sandbox, "true"} (MCP)', bash_ms),
    ("podman exec CONTAINER true (by hand)", exec_ms),
]
for label, values in rows:
    print(f"{label:44} {len(values):>3} {statistics.median(values):8.0f} {min(values):8.0f} "
          f"{p(values, 0.9):8.0f} {max(values):8.0f}")
print()
print(f"first remote_bash in the sandbox (not counted): {warm:.0f} ms")
print(f"remote_bash overhead over podman exec (p50): "
      f"{statistics.median(bash_ms) - statistics.median(exec_ms):+.0f} ms")
print(f"load average before: {load_before}   after: {load_after}")

client.close()
PY
