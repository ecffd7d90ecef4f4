#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the tests and benchmarks (never for users):
# munge + slurmctld + slurmd with their config, state, logs and pid files under DIR, the daemons'
# ports picked free. Commands reach it with SLURM_CONF=DIR/slurm.conf (the script prints it).
#   scripts/slurm-local.sh start DIR [GRES_LINE [GRES_CONF]]   starts it (installs slurm-wlm + munge if
#       missing); GRES_LINE goes on the node ("Gres=gpu:2"), GRES_CONF into DIR/gres.conf
#       ("Name=gpu File=/path/nvidia[0-1]")
#   scripts/slurm-local.sh stop DIR               stops its daemons (munge is left running)
# Needs root (slurmd runs jobs as their users). Idempotent: start on a running cluster restarts it.
set -euo pipefail
# The daemons started here outlive the caller: they must not keep its descriptors (a lock a build
# holds with flock, a test runner's pipe), so every inherited one beyond stderr is closed first.
for fd_path in /proc/$$/fd/*; do
  fd="${fd_path##*/}"
  if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
done
cmd="${1:?start|stop}"
dir="${2:?directory}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

stop() {
  for d in slurmd slurmctld; do
    if [[ -f "$dir/$d.pid" ]]; then
      kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    fi
  done
  for _ in $(seq 50); do
    alive=0
    for d in slurmd slurmctld; do
      [[ -f "$dir/$d.pid" ]] && kill -0 "$(cat "$dir/$d.pid")" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  rm -f "$dir/slurmd.pid" "$dir/slurmctld.pid"
}

if [[ "$cmd" == stop ]]; then
  stop
  exit 0
fi
[[ "$cmd" == start ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
  echo "slurm-local: needs root (slurmd starts jobs as their users)" >&2
  exit 77
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi
stop

# munge: one daemon for the machine, as its own user, with the key the package made.
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  [[ -f /etc/munge/munge.key ]] || /usr/sbin/mungekey --create >/dev/null 2>&1 || true
  su -s /bin/sh munge -c /usr/sbin/munged
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
host="$(hostname -s)"
ctld_port="$(free_port)"
d_port="$(free_port)"
cpus="$(nproc)"
mem="$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)"
mkdir -p "$dir/ctld" "$dir/d"
cat >"$dir/slurm.conf" <<CONF
ClusterName=smcp-test
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=5
${3:+GresTypes=gpu}
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN ${3:+$3}
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if [[ -n "${4:-}" ]]; then
  echo "$4" >"$dir/gres.conf"
else
  rm -f "$dir/gres.conf"
fi
export SLURM_CONF="$dir/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    echo "SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.1
done
echo "slurm-local: the node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
sinfo >&2 || true
exit 1
