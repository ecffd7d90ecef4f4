// The tools a server offers, in registration order, with their tools/list representation.
#pragma once

#include "mcp-server/core/tool.h"

#include <memory>
#include <string_view>
#include <vector>

namespace smcp::mcp {

class ToolRegistry {
public:
  // Throws std::invalid_argument on a duplicate name or a schema that is not an object schema.
  void add(Tool tool);
  const Tool* find(std::string_view name) const;
  std::vector<std::string> names() const;
  // The `tools` array of a tools/list result.
  json list() const;

private:
  std::vector<std::unique_ptr<Tool>> m_tools;
};

} // namespace smcp::mcp
