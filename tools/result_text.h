// The text a model reads of each tool result. structuredContent carries every field; the text block
// is what clients such as Claude Code put in front of the model, so it reads like a terminal: the
// output first, then one short status line in brackets ("[exit 3 · 12 ms]"), fields that say
// nothing left out. Pure functions of the structured result, so they are unit-tested directly.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace smcp::tools {

using json = nlohmann::json;

// The model-facing text for `tool`'s structured result; empty when the tool has no renderer (the
// protocol core then sends the JSON itself).
std::string result_text(const std::string& tool, const json& structured);

// Pieces, exposed for tests.
std::string human_duration(long long ms);
std::string human_bytes(long long bytes);

} // namespace smcp::tools
