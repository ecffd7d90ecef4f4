#include "mcp-server/core/tool_registry.h"

#include <stdexcept>

namespace smcp::mcp {

namespace {
constexpr std::string_view k_level_names[] = {"debug", "info",     "notice", "warning",
                                              "error", "critical", "alert",  "emergency"};
} // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (std::size_t i = 0; i < std::size(k_level_names); ++i) {
    if (k_level_names[i] == name) {
      return static_cast<LogLevel>(i);
    }
  }
  return std::nullopt;
}

std::string_view log_level_name(LogLevel level) {
  return k_level_names[static_cast<std::size_t>(level)];
}

void ToolRegistry::add(Tool tool) {
  if (find(tool.name)) {
    throw std::invalid_argument("duplicate tool name: " + tool.name);
  }
  auto is_object_schema = [](const json& s) { return s.is_object() && s.value("type", "") == "object"; };
  if (!is_object_schema(tool.input_schema)) {
    throw std::invalid_argument("tool " + tool.name + ": inputSchema must be an object schema");
  }
  if (!tool.output_schema.is_null() && !is_object_schema(tool.output_schema)) {
    throw std::invalid_argument("tool " + tool.name + ": outputSchema must be an object schema");
  }
  if (!tool.handler) {
    throw std::invalid_argument("tool " + tool.name + ": no handler");
  }
  m_tools.push_back(std::make_unique<Tool>(std::move(tool)));
}

const Tool* ToolRegistry::find(std::string_view name) const {
  for (const auto& t : m_tools) {
    if (t->name == name) {
      return t.get();
    }
  }
  return nullptr;
}

std::vector<std::string> ToolRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& t : m_tools) {
    out.push_back(t->name);
  }
  return out;
}

json ToolRegistry::list() const {
  json tools = json::array();
  for (const auto& t : m_tools) {
    json entry = {
        {"name", t->name},
        {"title", t->title},
        {"description", t->description},
        {"inputSchema", t->input_schema},
        {"annotations",
         {{"title", t->title},
          {"readOnlyHint", t->annotations.read_only},
          {"destructiveHint", t->annotations.destructive},
          {"idempotentHint", t->annotations.idempotent},
          {"openWorldHint", t->annotations.open_world}}},
    };
    if (!t->output_schema.is_null()) {
      entry["outputSchema"] = t->output_schema;
    }
    tools.push_back(std::move(entry));
  }
  return tools;
}

} // namespace smcp::mcp
