#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a checked tree (CI's .ci/run is exactly this):
# installs everything the tests drive for real (sshd, tmux, podman, Docker, Slurm, bubblewrap,
# node + the MCP SDK and Claude Code, clang + libFuzzer, clang-tidy), builds, and runs, in order:
#   0. the clang-format check (scripts/format.sh --check);
#   1. the build in build/ (warnings are errors: SMCP_WERROR=ON, the flags scripts/serve.sh builds
#      the server with, so nothing it built is built again) and every test: unit, integration, e2e,
#      conformance;
#   2. the unit and integration tests again under ASan + UBSan, in the clang tree build-fuzz/;
#   3. each libFuzzer target for $SMCP_FUZZ_SECONDS (default 15) from its seed corpus;
#   4. clang-tidy over our sources and headers, its warnings as errors (scripts/tidy.sh);
#   5. the size limits of docs/ARCHITECTURE.md (scripts/sizes.sh).
# Every stage runs even when one before it failed (but for a failed build's tests); the script ends
# with each stage's time and result and fails when any failed.
#
# The quick loop, for developers:
#   SMCP_QUICK=1 scripts/test.sh            stages 0 and 1 only
#   scripts/test.sh -L unit                 extra arguments go to ctest: stage 1 only (-L unit,
#                                           -L integration, -L e2e, -R sandbox, ...)
#   SMCP_STAGES="2 3" scripts/test.sh       only these stages (numbers above)
#   SMCP_SANITIZE=asan|tsan scripts/test.sh the whole suite in a gcc sanitizer tree (build-asan/-tsan)
#   SMCP_FUZZ_SECONDS=60 scripts/test.sh    longer fuzzing in stage 3
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh" --test || exit 1
"$root/tests/e2e/install.sh" || exit 1
start=$SECONDS
declare -a summary=()
failed=0

stages="${SMCP_STAGES:-0 1 2 3 4 5}"
if [[ $# -gt 0 || "${SMCP_QUICK:-}" == 1 || -n "${SMCP_SANITIZE:-}" ]]; then
  stages="${SMCP_STAGES:-0 1}"
fi
wanted() { [[ " $stages " == *" $1 "* ]]; }

# run_stage N TITLE FUNCTION: times it, records the result, never stops the script.
run_stage() {
  local n="$1" title="$2" fn="$3" t0=$SECONDS status
  shift 3
  wanted "$n" || return 0
  echo "test.sh: stage $n: $title ($((SECONDS - start)) s so far)" >&2
  "$fn" "$@"
  status=$?
  local took=$((SECONDS - t0))
  if ((status == 0)); then
    summary+=("$(printf 'stage %s  %-48s %5d s  ok' "$n" "$title" "$took")")
  else
    summary+=("$(printf 'stage %s  %-48s %5d s  FAILED (status %d)' "$n" "$title" "$took" "$status")")
    failed=1
  fi
  return "$status"
}

format_check() { "$root/scripts/format.sh" --check; }

build_dir=""
suite() {
  build_dir="$("$root/scripts/build.sh" -DSMCP_WERROR=ON | tail -n 1)" || return 1
  [[ -n "$build_dir" && -x "$build_dir/tests/unit_tests" ]] || {
    echo "test.sh: no tests were built in $build_dir (GoogleTest missing? scripts/install-deps.sh --test)" >&2
    return 1
  }
  # The sandbox image the container tests use, built from Debian's mirror (about a minute the
  # first time; a no-op once it exists).
  "$build_dir/mcp-server/app/sandbox-mcp" image build >&2 || return 1
  (cd "$build_dir" && ctest --output-on-failure --timeout 900 -j2 "$@")
}

fuzz_dir="$root/build-fuzz"
sanitized() {
  # -O1 and line tables only: what the sanitizers need for exact reports, at a third less compile
  # time than -O2 -g. SMCP_FUZZ=ON adds libFuzzer's coverage instrumentation and the fuzzers.
  cmake -S "$root" -B "$fuzz_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    -DSMCP_FUZZ=ON -DSMCP_BUILD_BENCH=OFF -DSMCP_WERROR=ON >&2 || return 1
  cmake --build "$fuzz_dir" -j"$(nproc)" >&2 || return 1
  (cd "$fuzz_dir" &&
    ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --output-on-failure --timeout 900 -j2 -L 'unit|integration')
}

fuzz() {
  [[ -x "$fuzz_dir/tests/fuzz/fuzz_jsonrpc" ]] || { echo "test.sh: the fuzzers were not built (stage 2)" >&2; return 1; }
  SMCP_FUZZ_BUILD_DIR="$fuzz_dir" SMCP_FUZZ_NO_BUILD=1 "$root/scripts/fuzz.sh" all "${SMCP_FUZZ_SECONDS:-15}"
}

tidy() { SMCP_TIDY_BUILD_DIR="$fuzz_dir" "$root/scripts/tidy.sh"; }
sizes() { "$root/scripts/sizes.sh"; }

run_stage 0 "clang-format check" format_check
run_stage 1 "build (warnings are errors), every test" suite "$@"
run_stage 2 "ASan + UBSan build, unit + integration tests" sanitized
run_stage 3 "fuzzers, ${SMCP_FUZZ_SECONDS:-15} s each" fuzz
run_stage 4 "clang-tidy, sources and headers" tidy
run_stage 5 "sizes of files and functions" sizes

echo "test.sh: done in $((SECONDS - start)) s (after installing dependencies)" >&2
for line in "${summary[@]}"; do
  echo "  $line" >&2
done
exit "$failed"
