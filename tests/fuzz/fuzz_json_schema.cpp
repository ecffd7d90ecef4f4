// Fuzzes JSON Schema argument validation (mcp-server/json_schema.h) with untrusted values against
// the schemas the server really uses: every tool's inputSchema and outputSchema, and one schema
// using every keyword the validator supports. The answer must be "valid" or a non-empty message;
// the validator must never throw or crash.
//
// Input: the JSON value (inputs that are not JSON are skipped; the protocol answers those with a
// parse error before any validation).
#include "mcp-server/core/json_schema.h"
#include "mcp-server/store/state_store.h"
#include "tests/support/fake_host.h"
#include "tools/tools.h"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace {

using namespace smcp;
using json = nlohmann::json;

const char* k_every_keyword = R"({
  "type": "object",
  "properties": {
    "s": {"type": "string", "minLength": 1, "maxLength": 8},
    "i": {"type": "integer", "minimum": -5, "maximum": 5},
    "n": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "e": {"enum": ["TERM", "KILL", 9]},
    "c": {"const": {"a": [1, 2]}},
    "b": {"type": "boolean"},
    "a": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    "m": {"type": "object", "additionalProperties": {"type": "string"}},
    "any": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
    "one": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    "never": false,
    "always": true
  },
  "required": ["s"],
  "additionalProperties": false
})";

std::vector<json>& schemas() {
  static std::vector<json> all;
  return all;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  // The tools are built only to read their schemas; no handler runs.
  static tools::HostRegistry hosts;
  static auto store = state::open_sqlite_store(":memory:");
  static tools::JobManager jobs(hosts, *store, tools::JobOptions{});
  static tools::ToolEnv env{hosts, jobs, *store};
  mcp::ToolRegistry registry;
  tools::register_tools(registry, env);
  for (const auto& name : registry.names()) {
    const auto* tool = registry.find(name);
    schemas().push_back(tool->input_schema);
    if (!tool->output_schema.is_null()) {
      schemas().push_back(tool->output_schema);
    }
  }
  schemas().push_back(json::parse(k_every_keyword));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  json value =
      json::parse(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size, nullptr, false);
  if (value.is_discarded()) {
    return 0;
  }
  for (const auto& schema : schemas()) {
    if (auto error = mcp::validate_json(schema, value, "arguments"); error && error->empty()) {
      __builtin_trap(); // a refusal always says why
    }
  }
  return 0;
}
