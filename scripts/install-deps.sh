#!/usr/bin/env bash
# Installs what sandbox-mcp needs from Debian's packages (and nothing else), idempotently: only
# packages that are missing are installed, so a second run takes a fraction of a second.
#   scripts/install-deps.sh          build dependencies
#   scripts/install-deps.sh --test   plus what the test suite drives for real (sshd, tmux, node, ...)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config ccache git
  libssh2-1-dev nlohmann-json3-dev libboost-dev libasio-dev libspdlog-dev libfmt-dev
  libcli11-dev libpcre2-dev libsqlite3-dev sqlite3 openssh-client
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(
    libgtest-dev libgmock-dev libbenchmark-dev
    openssh-server tmux curl procps psmisc
    nodejs npm
    clang-format                   # scripts/format.sh --check (stage 0 of scripts/test.sh)
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
