#!/usr/bin/env bash
# A Docker engine of the tests' own on this machine (never for users), beside any system docker the
# human may run: dockerd from Debian's docker.io on a private socket, data root and exec root (its
# own containerd under them), no bridge, no iptables rules, no IP forwarding: containers get only
# their loopback, and nothing leaves the machine. Commands reach it with DOCKER_HOST (printed).
#   scripts/docker-local.sh start    starts it when it does not answer (installs docker.io when dockerd
#       is missing) and loads localhost/sandbox-mcp:latest from podman when the engine lacks it or
#       has another build of it; prints DOCKER_HOST=unix://... Quick (one `docker info`) when running.
#   scripts/docker-local.sh stop     stops it (the data root, with its images, is kept for the next start)
#   scripts/docker-local.sh status   prints DOCKER_HOST=... and exits 0 when it answers, else says why (1)
# Needs root. Exit 77 (and why, on stderr) when the engine cannot run here: not root, docker.io
# cannot be installed, or dockerd dies at start (the last lines of its log are shown).
# SMCP_DOCKER_IMAGE names the image to load (default localhost/sandbox-mcp:latest; empty: none).
set -euo pipefail
# The daemons started here outlive the caller: they must not keep its descriptors (a lock a build
# holds with flock, a test runner's pipe), so every inherited one beyond stderr is closed first.
for fd_path in /proc/$$/fd/*; do
  fd="${fd_path##*/}"
  if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
done
cmd="${1:?start|stop|status}"
sock=/run/smcp-docker.sock
pidfile=/run/smcp-dockerd.pid
data_root=/var/lib/smcp-docker
exec_root=/run/smcp-docker
log=/var/log/smcp-dockerd.log
lock=/run/smcp-docker.lock
image="${SMCP_DOCKER_IMAGE-localhost/sandbox-mcp:latest}"
export DOCKER_HOST="unix://$sock"
answers() { timeout 20 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }
cannot() {
  echo "docker-local: $*" >&2
  exit 77
}

running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid="$(cat "$pidfile")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] &&
    echo "$pid"
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid"
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "docker-local: dockerd $pid did not stop in 15 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile" "$sock"
}

# Loads $image from podman when this engine lacks it or holds another build of it (same id: the
# id of an image is the digest of its config in both).
load_image() {
  [[ -n "$image" ]] || return 0
  local want have
  if ! want="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null)"; then
    if docker image inspect "$image" >/dev/null 2>&1; then
      return 0
    fi
    echo "docker-local: $image is neither in podman nor in this engine (build it with \`sandbox-mcp image build\`); not loaded" >&2
    return 0
  fi
  have="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  if [[ "${have#sha256:}" != "${want#sha256:}" ]]; then
    echo "docker-local: loading $image from podman" >&2
    podman save "$image" | docker load -q >&2
  fi
}

case "$cmd" in
  status)
    if answers; then
      echo "DOCKER_HOST=$DOCKER_HOST"
      exit 0
    fi
    if pid="$(running_pid)"; then
      echo "docker-local: dockerd $pid runs but $sock does not answer (see $log)" >&2
    else
      echo "docker-local: not running" >&2
    fi
    exit 1
    ;;
  stop)
    [[ $(id -u) -eq 0 ]] || cannot "needs root"
    exec 9>"$lock"
    flock 9
    stop
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac

[[ $(id -u) -eq 0 ]] || cannot "needs root (dockerd runs as root here)"
# Test processes start at the same moment (ctest -j2): one starts the engine, the others wait.
exec 9>"$lock"
flock 9
if answers; then
  load_image
  echo "DOCKER_HOST=$DOCKER_HOST"
  exit 0
fi
if ! command -v dockerd >/dev/null && [[ ! -x /usr/sbin/dockerd ]]; then
  echo "docker-local: installing docker.io (dockerd is missing)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1 ||
      cannot "docker.io cannot be installed here (apt-get install docker.io failed)"
  fi
fi
command -v docker >/dev/null || cannot "no docker client (docker.io installs one)"
dockerd="$(command -v dockerd || echo /usr/sbin/dockerd)"
stop # a dockerd of ours that no longer answers
mkdir -p "$data_root" "$exec_root"
: >"$log"
# setsid: the engine outlives the test process that started it, and its signals.
setsid "$dockerd" --host="unix://$sock" --pidfile="$pidfile" --data-root="$data_root" --exec-root="$exec_root" \
  --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
  --default-ulimit nofile=1024:1024 --default-ulimit nproc=1024:1024 </dev/null >>"$log" 2>&1 9>&- &
pid=$!
for _ in $(seq 300); do
  if answers; then
    load_image
    echo "DOCKER_HOST=$DOCKER_HOST"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cannot "dockerd cannot run here; it said (from $log):
$(tail -n 15 "$log")"
  fi
  sleep 0.1
done
echo "docker-local: dockerd $pid started but $sock did not answer in 30 s; see $log" >&2
tail -n 15 "$log" >&2
exit 1
