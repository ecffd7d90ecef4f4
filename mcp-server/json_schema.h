// A validator for the JSON Schema subset our tool schemas use: type (one or a list), properties,
// required, additionalProperties (bool or schema), enum, const, minimum/maximum,
// exclusiveMinimum/exclusiveMaximum, minLength/maxLength, items, minItems/maxItems, anyOf, oneOf.
// Errors name the offending field by path, e.g. "arguments.env.PATH".
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace smcp::mcp {

// Returns nullopt when `value` satisfies `schema`, otherwise a one-line message naming the field.
std::optional<std::string> validate_json(const nlohmann::json& schema, const nlohmann::json& value,
                                         const std::string& path);

} // namespace smcp::mcp
