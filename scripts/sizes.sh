#!/bin/sh
# Lists our source files over 600 lines and functions over 120 lines (universal-ctags), the limits
# docs/ARCHITECTURE.md sets; a function allowed to be longer says why in a comment starting
# "Long because" right above or at its top. Exit status 1 when something is over and not explained.
# Usage: scripts/sizes.sh [FOLDER...]   (default: the code folders and tests/)
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- mcp-server tools transport ssh sandbox tests/unit tests/integration tests/support tests/bench tests/fuzz
if ! ctags --version 2>/dev/null | grep -q "Universal Ctags"; then
  echo "sizes.sh: needs universal-ctags (apt-get install universal-ctags; scripts/install-deps.sh --test)" >&2
  exit 2
fi
files=$(git ls-files -co --exclude-standard -- "$@" | grep -E '\.(cpp|h)$' || true)
status=0
for f in $files; do
  n=$(wc -l <"$f")
  if [ "$n" -gt 600 ]; then
    echo "file $f: $n lines"
    status=1
  fi
done
# shellcheck disable=SC2086
ctags -x --c++-kinds=f --fields=+ne --output-format=json -o - $files 2>/dev/null |
  python3 -c '
import json, sys
bad = 0
for line in sys.stdin:
    t = json.loads(line)
    if t.get("kind") != "function" or "end" not in t:
        continue
    n = t["end"] - t["line"] + 1
    if n <= 120:
        continue
    with open(t["path"]) as f:
        lines = f.readlines()
    around = "".join(lines[max(0, t["line"] - 4):t["line"] + 3])
    if "Long because" in around:
        continue
    print("function %s:%d %s: %d lines" % (t["path"], t["line"], t["name"], n))
    bad = 1
sys.exit(bad)
' || status=1
exit $status
