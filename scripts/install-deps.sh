#!/usr/bin/env bash
# Installs what sandbox-mcp needs from Debian's packages (and nothing else), idempotently: only
# packages that are missing are installed, so a second run takes a fraction of a second.
#   scripts/install-deps.sh          build dependencies
#   scripts/install-deps.sh --sandbox  plus what sandboxes need here (podman, runc, catatonit,
#                                      debootstrap, tmux, git) and a podman drop-in where needed
#   scripts/install-deps.sh --test   plus what the test suite drives for real (sshd, tmux, node,
#                                    podman, ...)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config ccache git
  libssh2-1-dev nlohmann-json3-dev libboost-dev libasio-dev libspdlog-dev libfmt-dev
  libcli11-dev libpcre2-dev libsqlite3-dev sqlite3 openssh-client
)
sandbox=0
if [[ "${1:-}" == "--test" || "${1:-}" == "--sandbox" ]]; then
  sandbox=1
  packages+=(podman runc catatonit debootstrap tmux)
fi
if [[ "${1:-}" == "--test" ]]; then
  packages+=(
    libgtest-dev libgmock-dev libbenchmark-dev
    openssh-server tmux curl procps psmisc
    slurm-wlm munge                # a real single-node cluster for the Slurm tests (scripts/slurm-local.sh)
    docker.io                      # a real Docker engine for the docker sandbox tests (scripts/docker-local.sh)
    bubblewrap python3             # execution profiles (tests/integration/profiles_test.cpp), test helpers
    nodejs npm
    clang-format                   # scripts/format.sh --check (stage 0 of scripts/test.sh)
    clang-tidy universal-ctags     # scripts/tidy.sh and scripts/sizes.sh (stages 4 and 5)
    clang libclang-rt-14-dev llvm  # libFuzzer + clang's ASan/UBSan runtimes, llvm-symbolizer (tests/fuzz)
  )
fi

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    # A tool may be present without its Debian package (e.g. node from elsewhere).
    case "$p" in
      nodejs) command -v node >/dev/null 2>&1 && continue ;;
      npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# podman on this machine kind: crun fails on hybrid (v1) cgroups, and containers may not raise
# RLIMIT_NOFILE/NPROC above the hard limits every `podman run` asks for by default
# ("error setting rlimit type 7"). A drop-in fixes both; it is written once, only where needed.
dropin=/etc/containers/containers.conf.d/50-sandbox-mcp.conf
if ((sandbox)) && [[ ! -e "$dropin" ]]; then
  cgroup="$(stat -fc %T /sys/fs/cgroup 2>/dev/null || echo unknown)"
  nofile="$(ulimit -Hn)"
  if [[ "$cgroup" != cgroup2fs || "$nofile" != unlimited && "$nofile" -lt 1048576 ]]; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    echo "install-deps: writing $dropin (runc; ulimits nofile and nproc 1024:1024)" >&2
    $SUDO mkdir -p "$(dirname "$dropin")"
    printf '# Written by sandbox-mcp scripts/install-deps.sh (see docs/sandboxes.md).\n[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n\n[engine]\nruntime = "runc"\n' |
      $SUDO tee "$dropin" >/dev/null
  fi
fi
