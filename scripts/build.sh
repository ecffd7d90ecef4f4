#!/usr/bin/env bash
# Configures and builds sandbox-mcp into build/ (or $SMCP_BUILD_DIR).
#   SMCP_SANITIZE=asan|tsan   build with sanitizers (into build-asan / build-tsan by default)
#   SMCP_BUILD_TYPE=Release   build type (default RelWithDebInfo)
#   SMCP_TARGETS="a b"        build only these targets (default: all); scripts/serve.sh builds
#                             sandbox-mcp alone, with the same flags as scripts/test.sh, so that
#                             test.sh after it rebuilds none of its objects
# Extra arguments go to cmake's configure step (e.g. -DSMCP_WERROR=ON).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sanitize="${SMCP_SANITIZE:-}"
build_dir="${SMCP_BUILD_DIR:-$root/build${sanitize:+-$sanitize}}"
flags=(-DCMAKE_BUILD_TYPE="${SMCP_BUILD_TYPE:-RelWithDebInfo}")
case "$sanitize" in
  "") ;;
  asan) flags+=(-DSMCP_ASAN=ON) ;;
  tsan) flags+=(-DSMCP_TSAN=ON) ;;
  *) echo "SMCP_SANITIZE must be asan or tsan" >&2; exit 2 ;;
esac
cmake -S "$root" -B "$build_dir" -G Ninja "${flags[@]}" "$@" >&2
targets=()
for t in ${SMCP_TARGETS:-}; do
  targets+=(--target "$t")
done
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}" >&2 # progress and errors on stderr; stdout is the build dir
echo "$build_dir"
