#!/usr/bin/env bash
# What the model reads (issue 9): plays the standard agent task (start a training run in the
# background, wait for "epoch 3" reading only loss lines, read the log's last 20 lines, kill it)
# through Claude Code's real CLI, with a local stub of the Anthropic API that records each
# tool_result as Claude Code puts it in front of the model. Prints the bytes per step and in total,
# for the default text (--result-text terminal) and the JSON text (--result-text json), and the
# texts themselves. No account or network: the stub answers on loopback.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$root/scripts/install-deps.sh" --test
"$root/tests/e2e/install.sh"
build_dir="$("$root/scripts/build.sh" | tail -n 1)"
exec node "$root/tests/bench/model_text.mjs" "$build_dir/mcp-server/app/sandbox-mcp"
