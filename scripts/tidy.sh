#!/usr/bin/env bash
# clang-tidy over our sources and the headers they include (.clang-tidy's checks; every warning is an
# error), in parallel. Headers are reached through the build tree's include links
# (build*/include/smcp_LIB/FOLDER -> FOLDER, see the root CMakeLists.txt), so the header filter names
# both those links and the source folders. Needs a configured clang tree's compile_commands.json:
#   SMCP_TIDY_BUILD_DIR=DIR   (default build-fuzz, which scripts/test.sh stage 2 configures; gcc's
#                             flags in build/ are not all clang's)
#   scripts/tidy.sh [FILE...] only these sources (default: every .cpp of the code folders)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${SMCP_TIDY_BUILD_DIR:-$root/build-fuzz}"
if [[ ! -f "$build_dir/compile_commands.json" ]]; then
  echo "tidy.sh: no $build_dir/compile_commands.json: configure a clang tree first (scripts/test.sh stage 2, or" >&2
  echo "  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DSMCP_FUZZ=ON)" >&2
  exit 2
fi
runner="$(command -v run-clang-tidy-14 || command -v run-clang-tidy || true)"
if [[ -z "$runner" ]]; then
  echo "tidy.sh: needs clang-tidy (apt-get install clang-tidy)" >&2
  exit 2
fi
folders='(mcp-server|tools|transport|ssh|sandbox)'
rx_root="$(printf '%s' "$root" | sed 's/[.[\*^$()+?{|]/\\&/g')"
rx_build="$(printf '%s' "$build_dir" | sed 's/[.[\*^$()+?{|]/\\&/g')"
header_filter="^($rx_build/include/smcp_[a-z_]+/$folders/|$rx_root/$folders/)"
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  files=("^$rx_root/$folders/.*\\.cpp\$")
fi
log="$build_dir/clang-tidy.log"
# Every warning of a check .clang-tidy keeps fails the run (run-clang-tidy-14 cannot pass
# -warnings-as-errors on: the findings are read from its log, which keeps what was said).
status=0
"$runner" -p "$build_dir" -j"$(nproc)" -quiet -header-filter="$header_filter" "${files[@]}" >"$log" 2>&1 ||
  status=$?
findings="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E ': (warning|error): .*\[[a-z0-9.,-]+\]$' | sort -u || true)"
if [[ -n "$findings" || $status -ne 0 ]]; then
  echo "$findings" >&2
  echo "tidy.sh: clang-tidy found $(printf '%s\n' "$findings" | grep -c . || true) problem(s) (status $status); full log: $log" >&2
  exit 1
fi
echo "tidy.sh: clean ($(grep -c '"file"' "$build_dir/compile_commands.json") entries in the compile database; log: $log)" >&2
