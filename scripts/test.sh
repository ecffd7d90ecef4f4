#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a green test suite: installs everything the tests
# drive for real (sshd, tmux, node + the MCP SDK, clang + libFuzzer, ...), builds, and runs:
#   0. the clang-format check (scripts/format.sh --check); the build treats warnings as errors
#      (SMCP_WERROR=ON, as CMakePresets.json's "ci" preset);
#   1. every test (unit, integration, e2e, conformance) in build/;
# and with SMCP_FULL=1 (not in CI: a second full build, in clang, costs more than CI's time budget
# leaves; run it before a release and after changes to memory handling, parsers or threads):
#   2. the unit and integration tests again under ASan + UBSan, in the clang tree build-fuzz/;
#   3. each libFuzzer target for $SMCP_FUZZ_SECONDS (default 20) from its seed corpus.
# A failure in any stage fails the script (after the stages before it ran).
#   SMCP_FULL=1 scripts/test.sh           stages 0-3
#   scripts/test.sh -L unit               extra arguments go to ctest, stage 1 only (e.g. -L unit, -R http)
#   SMCP_SANITIZE=asan|tsan scripts/test.sh   the whole suite in a gcc sanitizer tree (build-asan/-tsan) only
#   SMCP_FUZZ_SECONDS=60 scripts/test.sh  longer fuzzing in stage 3
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh" --test
"$root/tests/e2e/install.sh"
start=$SECONDS
stage() { echo "test.sh: $1 ($((SECONDS - start)) s so far)" >&2; }

stage "stage 0: clang-format check"
"$root/scripts/format.sh" --check

stage "stage 1: build (warnings are errors) and run every test"
build_dir="$("$root/scripts/build.sh" -DSMCP_WERROR=ON | tail -n 1)"
# The sandbox image the container tests use, built here from Debian's mirror (about a minute the
# first time; a no-op once it exists).
"$build_dir/mcp-server/app/sandbox-mcp" image build >&2
(cd "$build_dir" && ctest --output-on-failure --timeout 900 -j2 "$@")
if [[ $# -gt 0 || "${SMCP_FULL:-}" != 1 || -n "${SMCP_SANITIZE:-}" ]]; then
  stage "done"
  exit 0
fi

stage "stage 2: unit and integration tests under ASan + UBSan (clang, build-fuzz)"
fuzz_dir="$root/build-fuzz"
cmake -S "$root" -B "$fuzz_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DSMCP_FUZZ=ON -DSMCP_BUILD_BENCH=OFF -DSMCP_WERROR=ON >&2
cmake --build "$fuzz_dir" -j"$(nproc)" >&2
(cd "$fuzz_dir" &&
  ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -j2 -L 'unit|integration')

stage "stage 3: fuzzers, ${SMCP_FUZZ_SECONDS:-20} s each"
SMCP_FUZZ_BUILD_DIR="$fuzz_dir" SMCP_FUZZ_NO_BUILD=1 "$root/scripts/fuzz.sh" all "${SMCP_FUZZ_SECONDS:-20}"
stage "done"
