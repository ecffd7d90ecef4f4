// What the protocol core needs from whoever offers MCP resources (job outputs, today): a list, URI
// templates, and reads. Change notices reach subscribed sessions through
// Server::notify_resource_updated().
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace smcp::mcp {

class ResourceProvider {
public:
  virtual ~ResourceProvider() = default;
  // The `resources` array of resources/list.
  virtual nlohmann::json list() = 0;
  // The `resourceTemplates` array of resources/templates/list.
  virtual nlohmann::json templates() = 0;
  // The `contents` array of resources/read, or nullopt when `uri` names no resource.
  virtual std::optional<nlohmann::json> read(const std::string& uri) = 0;
  // Whether `uri` names a resource (resources/subscribe refuses others).
  virtual bool exists(const std::string& uri) { return read(uri).has_value(); }
};

} // namespace smcp::mcp
