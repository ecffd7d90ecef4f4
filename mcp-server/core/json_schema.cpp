#include "mcp-server/core/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace smcp::mcp {

using json = nlohmann::json;

namespace {

std::string type_of(const json& v) {
  switch (v.type()) {
  case json::value_t::null:
    return "null";
  case json::value_t::boolean:
    return "boolean";
  case json::value_t::number_integer:
  case json::value_t::number_unsigned:
    return "integer";
  case json::value_t::number_float:
    return "number";
  case json::value_t::string:
    return "string";
  case json::value_t::array:
    return "array";
  case json::value_t::object:
    return "object";
  default:
    return "unknown";
  }
}

bool has_type(const json& v, const std::string& type) {
  if (type == "integer") {
    if (v.is_number_integer()) {
      return true;
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      return std::isfinite(d) && std::floor(d) == d;
    }
    return false;
  }
  if (type == "number")
    return v.is_number();
  if (type == "string")
    return v.is_string();
  if (type == "boolean")
    return v.is_boolean();
  if (type == "object")
    return v.is_object();
  if (type == "array")
    return v.is_array();
  if (type == "null")
    return v.is_null();
  return false;
}

std::string child_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string short_json(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) {
    s = s.substr(0, 57) + "...";
  }
  return s;
}

// Integers beyond 2^53 - 1 cannot all be told apart once read as doubles (as JavaScript clients and
// our own range checks do): such a value is refused rather than silently rounded or clamped.
constexpr double k_max_safe_integer = 9007199254740991.0;

bool safe_integer(const json& v) {
  if (v.is_number_unsigned()) {
    return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(k_max_safe_integer);
  }
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    return i <= static_cast<std::int64_t>(k_max_safe_integer) && i >= -static_cast<std::int64_t>(k_max_safe_integer);
  }
  const double d = v.get<double>();
  return d <= k_max_safe_integer && d >= -k_max_safe_integer;
}

bool allows_type(const json& type, const char* name) {
  return type.is_string() ? type.get_ref<const std::string&>() == name
                          : type.is_array() && std::find(type.begin(), type.end(), name) != type.end();
}

std::size_t utf8_length(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) {
    n += (c & 0xC0) != 0x80;
  }
  return n;
}

// The first string or object key holding U+0000, as a message naming its field.
std::optional<std::string> find_nul(const json& value, const std::string& path) {
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (auto at = s.find('\0'); at != std::string::npos) {
      return "'" + path + "' contains a NUL character (\\u0000) at character " +
             std::to_string(utf8_length(s.substr(0, at)) + 1) +
             "; strings that reach commands, paths and environments cannot hold NUL";
    }
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (auto err = find_nul(value[i], path + "[" + std::to_string(i) + "]")) {
        return err;
      }
    }
  } else if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      if (key.find('\0') != std::string::npos) {
        return "'" + (path.empty() ? std::string("arguments") : path) +
               "' has a key containing a NUL character (\\u0000): " + short_json(json(key)) +
               "; names that reach commands, paths and environments cannot hold NUL";
      }
      if (auto err = find_nul(child, child_path(path, key))) {
        return err;
      }
    }
  }
  return std::nullopt;
}

// Each check below applies one group of keywords of `schema` to `value` and returns the first
// violation; validate_json runs them in order.

std::optional<std::string> check_type(const json& schema, const json& value, const std::string& path) {
  auto it = schema.find("type");
  if (it == schema.end()) {
    return std::nullopt;
  }
  bool ok = false;
  std::string expected;
  if (it->is_string()) {
    ok = has_type(value, it->get<std::string>());
    expected = it->get<std::string>();
  } else if (it->is_array()) {
    for (const auto& t : *it) {
      ok = ok || has_type(value, t.get<std::string>());
      expected += (expected.empty() ? "" : " or ") + t.get<std::string>();
    }
  }
  if (!ok) {
    return "'" + path + "' must be " + expected + ", got " + type_of(value) + " " + short_json(value);
  }
  if (value.is_number() && allows_type(*it, "integer") && !allows_type(*it, "number") && !safe_integer(value)) {
    return "'" + path + "' must be an integer between -9007199254740991 and 9007199254740991 (2^53 - 1), got " +
           short_json(value);
  }
  return std::nullopt;
}

// enum and const.
std::optional<std::string> check_allowed_values(const json& schema, const json& value, const std::string& path) {
  if (auto it = schema.find("enum"); it != schema.end()) {
    bool found = false;
    for (const auto& e : *it) {
      found = found || e == value;
    }
    if (!found) {
      return "'" + path + "' must be one of " + short_json(*it) + ", got " + short_json(value);
    }
  }
  if (auto it = schema.find("const"); it != schema.end() && *it != value) {
    return "'" + path + "' must be " + short_json(*it);
  }
  return std::nullopt;
}

std::optional<std::string> check_number(const json& schema, const json& value, const std::string& path) {
  if (!value.is_number()) {
    return std::nullopt;
  }
  const std::string where = "'" + path + "'";
  double d = value.get<double>();
  if (auto it = schema.find("minimum"); it != schema.end() && d < it->get<double>()) {
    return where + " must be >= " + it->dump() + ", got " + value.dump();
  }
  if (auto it = schema.find("maximum"); it != schema.end() && d > it->get<double>()) {
    return where + " must be <= " + it->dump() + ", got " + value.dump();
  }
  if (auto it = schema.find("exclusiveMinimum"); it != schema.end() && d <= it->get<double>()) {
    return where + " must be > " + it->dump() + ", got " + value.dump();
  }
  if (auto it = schema.find("exclusiveMaximum"); it != schema.end() && d >= it->get<double>()) {
    return where + " must be < " + it->dump() + ", got " + value.dump();
  }
  return std::nullopt;
}

std::optional<std::string> check_string(const json& schema, const json& value, const std::string& path) {
  if (!value.is_string()) {
    return std::nullopt;
  }
  std::size_t len = utf8_length(value.get_ref<const std::string&>());
  if (auto it = schema.find("minLength"); it != schema.end() && len < it->get<std::size_t>()) {
    return "'" + path + "' must have at least " + it->dump() + " characters";
  }
  if (auto it = schema.find("maxLength"); it != schema.end() && len > it->get<std::size_t>()) {
    return "'" + path + "' must have at most " + it->dump() + " characters, got " + std::to_string(len);
  }
  return std::nullopt;
}

std::optional<std::string> check_array(const json& schema, const json& value, const std::string& path) {
  if (!value.is_array()) {
    return std::nullopt;
  }
  if (auto it = schema.find("minItems"); it != schema.end() && value.size() < it->get<std::size_t>()) {
    return "'" + path + "' must have at least " + it->dump() + " items";
  }
  if (auto it = schema.find("maxItems"); it != schema.end() && value.size() > it->get<std::size_t>()) {
    return "'" + path + "' must have at most " + it->dump() + " items";
  }
  if (auto it = schema.find("items"); it != schema.end()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (auto err = validate_json(*it, value[i], path + "[" + std::to_string(i) + "]")) {
        return err;
      }
    }
  }
  return std::nullopt;
}

// required, properties and additionalProperties.
std::optional<std::string> check_object(const json& schema, const json& value, const std::string& path) {
  if (!value.is_object()) {
    return std::nullopt;
  }
  if (auto it = schema.find("required"); it != schema.end()) {
    for (const auto& name : *it) {
      if (!value.contains(name.get<std::string>())) {
        return "missing required field '" + child_path(path, name.get<std::string>()) + "'";
      }
    }
  }
  const json* props = nullptr;
  if (auto it = schema.find("properties"); it != schema.end()) {
    props = &*it;
  }
  const json* additional = nullptr;
  if (auto it = schema.find("additionalProperties"); it != schema.end()) {
    additional = &*it;
  }
  for (const auto& [key, child] : value.items()) {
    if (props && props->contains(key)) {
      if (auto err = validate_json((*props)[key], child, child_path(path, key))) {
        return err;
      }
    } else if (additional) {
      if (additional->is_boolean() && !additional->get<bool>()) {
        std::string known;
        if (props) {
          for (const auto& [k, unused] : props->items()) {
            (void)unused;
            known += (known.empty() ? "" : ", ") + k;
          }
        }
        return "unknown field '" + child_path(path, key) + "'" +
               (known.empty() ? std::string() : " (known fields: " + known + ")");
      }
      if (auto err = validate_json(*additional, child, child_path(path, key))) {
        return err;
      }
    }
  }
  return std::nullopt;
}

// anyOf and oneOf.
std::optional<std::string> check_alternatives(const json& schema, const json& value, const std::string& path) {
  if (auto it = schema.find("anyOf"); it != schema.end()) {
    std::optional<std::string> first;
    for (const auto& sub : *it) {
      auto err = validate_json(sub, value, path);
      if (!err) {
        first.reset();
        break;
      }
      if (!first) {
        first = err;
      }
    }
    if (first) {
      return first;
    }
    if (it->empty()) {
      return "'" + path + "' matches none of the alternatives"; // an empty anyOf matches nothing
    }
  }
  if (auto it = schema.find("oneOf"); it != schema.end()) {
    int matches = 0;
    std::optional<std::string> first;
    for (const auto& sub : *it) {
      auto err = validate_json(sub, value, path);
      if (!err) {
        ++matches;
      } else if (!first) {
        first = err;
      }
    }
    if (matches != 1) {
      if (matches > 1) {
        return "'" + path + "' matches more than one alternative";
      }
      return first ? *first : "'" + path + "' matches none of the alternatives"; // an empty oneOf
    }
  }
  return std::nullopt;
}

} // namespace

std::optional<std::string> validate_json(const json& schema, const json& value, const std::string& path) {
  if (schema.is_boolean()) {
    return schema.get<bool>() ? std::nullopt : std::optional<std::string>("'" + path + "' is not allowed");
  }
  if (!schema.is_object()) {
    return std::nullopt;
  }
  using Check = std::optional<std::string> (*)(const json&, const json&, const std::string&);
  for (Check check :
       {check_type, check_allowed_values, check_number, check_string, check_array, check_object, check_alternatives}) {
    if (auto err = check(schema, value, path)) {
      return err;
    }
  }
  return std::nullopt;
}

std::optional<std::string> validate_arguments(const json& schema, const json& arguments) {
  if (auto err = find_nul(arguments, "")) {
    return err;
  }
  return validate_json(schema, arguments, "");
}

} // namespace smcp::mcp
