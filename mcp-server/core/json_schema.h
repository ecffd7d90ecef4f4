// A validator for the JSON Schema subset our tool schemas use: type (one or a list), properties,
// required, additionalProperties (bool or schema), enum, const, minimum/maximum,
// exclusiveMinimum/exclusiveMaximum, minLength/maxLength, items, minItems/maxItems, anyOf, oneOf.
// Integers must be exactly representable as doubles (|n| <= 2^53 - 1).
// Errors name the offending field by path, e.g. "arguments.env.PATH".
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace smcp::mcp {

// Returns nullopt when `value` satisfies `schema`, otherwise a one-line message naming the field.
// An integer outside +-(2^53 - 1) does not satisfy "type": "integer" (it would be rounded).
std::optional<std::string> validate_json(const nlohmann::json& schema, const nlohmann::json& value,
                                         const std::string& path);

// validate_json for a tool call's arguments, which additionally may hold no NUL character (U+0000)
// in any string or object key: they reach argv, paths and environments, where NUL ends a C string
// and would silently cut the value.
std::optional<std::string> validate_arguments(const nlohmann::json& schema, const nlohmann::json& arguments);

} // namespace smcp::mcp
