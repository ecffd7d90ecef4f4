#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; tests/fuzz/fuzz_*.cpp) into build-fuzz/ and
# runs them, each from its seed corpus tests/fuzz/corpus/NAME/. See docs/fuzzing.md.
#   scripts/fuzz.sh                      every target, 60 s each
#   scripts/fuzz.sh jsonrpc 600          one target (NAME or fuzz_NAME) for 600 s
#   scripts/fuzz.sh all 20               every target, 20 s each (scripts/test.sh does this in CI)
#   SMCP_FUZZ_BUILD_DIR=DIR              build tree (default build-fuzz)
#   SMCP_FUZZ_NO_BUILD=1                 use the fuzzers already built
#   extra libFuzzer flags after the seconds, e.g. scripts/fuzz.sh jsonrpc 600 -jobs=2 -workers=2
# A crash, a sanitizer report, a leak or a timeout fails the script; the input that caused it is in
# build-fuzz/fuzz-artifacts/NAME/ (replay: build-fuzz/tests/fuzz/fuzz_NAME FILE). Inputs that found
# new coverage go to build-fuzz/fuzz-corpus/NAME/; the seed corpus in the repository is never written.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${SMCP_FUZZ_BUILD_DIR:-$root/build-fuzz}"
target="${1:-all}"
seconds="${2:-60}"
shift $(($# > 2 ? 2 : $#))

if [[ "${SMCP_FUZZ_NO_BUILD:-}" != 1 ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${SMCP_BUILD_TYPE:-RelWithDebInfo}" \
    -DCMAKE_CXX_COMPILER="${SMCP_FUZZ_CXX:-clang++}" -DSMCP_FUZZ=ON >&2
  cmake --build "$build_dir" -j"$(nproc)" --target fuzzers >&2
fi

names=()
if [[ "$target" == all ]]; then
  for source in "$root"/tests/fuzz/fuzz_*.cpp; do
    names+=("$(basename "$source" .cpp)")
  done
else
  names=("fuzz_${target#fuzz_}")
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for name in "${names[@]}"; do
  short="${name#fuzz_}"
  binary="$build_dir/tests/fuzz/$name"
  if [[ ! -x "$binary" ]]; then
    echo "fuzz.sh: no fuzzer $binary (targets: $(cd "$root/tests/fuzz" && ls fuzz_*.cpp | sed 's/\.cpp//' | tr '\n' ' '))" >&2
    exit 2
  fi
  seeds="$root/tests/fuzz/corpus/$short"
  corpus="$build_dir/fuzz-corpus/$short"
  artifacts="$build_dir/fuzz-artifacts/$short"
  mkdir -p "$corpus" "$artifacts" "$seeds"
  flags=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
         -artifact_prefix="$artifacts/")
  if [[ -f "$root/tests/fuzz/$short.dict" ]]; then
    flags+=(-dict="$root/tests/fuzz/$short.dict")
  fi
  if [[ -f "$root/tests/fuzz/$short.options" ]]; then  # libFuzzer flags of this target, one per line
    while read -r option; do
      [[ -n "$option" && "$option" != \#* ]] && flags+=("$option")
    done <"$root/tests/fuzz/$short.options"
  fi
  echo "fuzz.sh: $name for ${seconds}s (seeds: tests/fuzz/corpus/$short, $(ls "$seeds" | wc -l) files)" >&2
  log="$build_dir/fuzz-artifacts/$short.log"
  if "$binary" "${flags[@]}" "$@" "$corpus" "$seeds" >"$log" 2>&1; then
    grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | tr '\n' ' ' >&2 || true
    echo >&2
  else
    echo "fuzz.sh: $name FAILED; log: $log; inputs: $artifacts/" >&2
    tail -n 60 "$log" >&2
    failed+=("$name")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
