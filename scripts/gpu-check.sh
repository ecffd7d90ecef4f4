#!/usr/bin/env bash
# GPU check, for a machine with NVIDIA GPUs (docs/sandboxes.md, "GPUs"): through the real server
# (MCP over stdio), runs `nvidia-smi -L` and a CUDA-free probe (nvidia-smi's GPU list and memory)
#   1. on the host itself (what there is),
#   2. in a container sandbox with gpus 1 (CDI, or docker --gpus),
#   3. under the permissive bubblewrap profile (its gpu switch is on),
#   4. in a Slurm sandbox with gpus 1, when `sinfo` answers (SLURM_CONF as usual),
# and prints what each saw. Needs a built binary (scripts/build.sh) and the sandbox image
# (`sandbox-mcp image build`); leaves nothing behind (a temporary repository, sandboxes removed).
#   scripts/gpu-check.sh [BINARY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build/mcp-server/app/sandbox-mcp}"
[[ -x "$bin" ]] || { echo "gpu-check: no binary at $bin (run scripts/build.sh)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi is not installed here: no NVIDIA GPU to check" >&2; exit 2; }
work="$(mktemp -d /tmp/smcp-gpu-check-XXXXXX)"
trap 'rm -rf "$work"' EXIT
git -C "$work" init -q -b main repo
git -C "$work/repo" -c user.name=gpu-check -c user.email=gpu@check commit -q --allow-empty -m init
slurm=0
if command -v sinfo >/dev/null && sinfo -h >/dev/null 2>&1; then
  slurm=1
fi
PYTHONPATH="$root/scripts" python3 - "$bin" "$work/repo" "$slurm" <<'PY'
import sys
from mcp_stdio import StdioClient

binary, repo, slurm = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
client = StdioClient([binary, "--repo_base", repo, "serve", "--state-dir", repo + "/.state", "--log-level", "warn"])

def call(tool, args):
    r = client.request("tools/call", {"name": tool, "arguments": args})
    if "error" in r:
        return None, r["error"]["message"]
    res = r["result"]
    if res.get("isError"):
        return None, res["content"][0]["text"]
    return res.get("structuredContent", {}), None

client.initialize("gpu-check")
probe = "nvidia-smi -L; nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader; echo CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"
failures = 0

def show(title, where):
    global failures
    r, err = call("remote_bash", dict(where, command=probe, timeout=60000))
    print(f"== {title}")
    if err:
        failures += 1
        print("   FAILED: " + err)
    else:
        print("   " + (r["stdout"] + r["stderr"]).strip().replace("\n", "\n   "))
        if r["exit_code"] != 0:
            failures += 1

show("the host", {})
made, err = call("sandbox_new", {"name": "gpu-check", "gpus": 1})
if err:
    failures += 1
    print("== container sandbox, gpus 1\n   FAILED: " + err)
else:
    show(f"container sandbox, gpus 1 (got GPU {made['gpus']})", {"sandbox": "gpu-check"})
    call("sandbox_rm", {"name": "gpu-check"})
show("bubblewrap profile permissive (gpu on)", {"profile": "permissive"})
if slurm:
    made, err = call("sandbox_new", {"name": "gpu-check-slurm", "slurm": True, "gpus": 1})
    if err:
        failures += 1
        print("== Slurm sandbox, gpus 1\n   FAILED: " + err)
    else:
        show(f"Slurm sandbox, gpus 1 (job {made['slurm_job_id']} on {made.get('node', '?')})", {"sandbox": "gpu-check-slurm"})
        call("sandbox_rm", {"name": "gpu-check-slurm"})
else:
    print("== Slurm sandbox: skipped (sinfo does not answer here)")
hosts, _ = call("remote_hosts", {"host": "local", "probe": True})
if hosts:
    for g in hosts["hosts"][0].get("gpus", []):
        print(f"   GPU {g['index']}: {g['name']}, {g['utilization_pct']}% busy, held by {g['sandboxes'] or 'no sandbox'}")
client.close()
sys.exit(1 if failures else 0)
PY
