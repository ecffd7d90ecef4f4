// JSON-RPC errors written by the transport, and the request-body functions of http_request.h:
// messages are parsed at the top level only (bounded memory, no deep recursion on hostile input).
#include "transport/http/jsonrpc.h"

#include "transport/http_request.h"

#include <nlohmann/json.hpp>

#include <optional>

namespace smcp::transport::http {

namespace {

using json = nlohmann::json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A parser callback that skips objects and arrays nested `depth` levels or deeper.
auto skip_nested_from(int skipped_depth) {
  return [skipped_depth](int depth, json::parse_event_t event, json&) {
    return !((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
             depth >= skipped_depth);
  };
}

// A JSON value parsed at the top level only: nested objects and arrays are skipped.
std::optional<json> parse_top_level(std::string_view text, std::string* error = nullptr) {
  try {
    return json::parse(text, skip_nested_from(1));
  } catch (const json::exception& e) { // parse_error, and out_of_range for numbers like 1e400
    if (error) {
      std::string what = e.what();
      if (auto pos = what.find("parse error"); pos != std::string::npos) {
        what = what.substr(pos);
      }
      *error = what;
    }
    return std::nullopt;
  }
}

// A batch's elements, each parsed at its own top level (ids are scalars or null).
std::vector<json> messages_in(std::string_view body) {
  std::vector<json> out;
  try {
    json j = json::parse(body, skip_nested_from(2));
    if (j.is_array()) {
      for (auto& m : j) {
        out.push_back(std::move(m));
      }
    } else {
      out.push_back(std::move(j));
    }
  } catch (const json::exception&) {
  }
  return out;
}

} // namespace

std::string error_message(int code, const std::string& message, std::string_view id_json) {
  json body = {{"jsonrpc", "2.0"},
               {"id", json::parse(id_json, nullptr, false)},
               {"error", {{"code", code}, {"message", message}}}};
  return dump(body);
}

BodyKind classify_body(std::string_view body, std::string& parse_message) {
  std::string error;
  auto message = parse_top_level(body, &error);
  if (!message) {
    parse_message = "Parse error: " + error;
    return BodyKind::parse_error;
  }
  if (message->is_object()) {
    auto method = message->find("method");
    if (method != message->end() && method->is_string() && *method == "initialize" && message->contains("id")) {
      return BodyKind::initialize;
    }
  }
  return BodyKind::other;
}

std::vector<std::string> request_ids(std::string_view body) {
  std::vector<std::string> ids;
  for (const auto& m : messages_in(body)) {
    if (m.is_object() && m.contains("method") && m.contains("id")) {
      const json& id = m["id"];
      if (id.is_string() || id.is_number()) {
        ids.push_back(dump(id));
      }
    }
    if (ids.size() >= 1024) {
      break;
    }
  }
  return ids;
}

std::optional<std::string> response_id(std::string_view message) {
  if (message.find("\"id\"") == std::string_view::npos) {
    return std::nullopt;
  }
  // Top-level keys are noted as they are parsed; nested values (a result, params) are skipped.
  bool answer = false, request = false;
  auto callback = [&, skip = skip_nested_from(1)](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      answer = answer || key == "result" || key == "error";
      request = request || key == "method";
    }
    return skip(depth, event, parsed);
  };
  json m;
  try {
    m = json::parse(message, callback);
  } catch (const json::exception&) {
    return std::nullopt;
  }
  if (!m.is_object() || !answer || request || !m.contains("id")) {
    return std::nullopt;
  }
  return dump(m["id"]);
}

bool is_error_without_id(std::string_view message) {
  if (message.size() > 64 * 1024 || message.find("\"error\"") == std::string_view::npos) {
    return false;
  }
  try {
    json j = json::parse(message);
    return j.is_object() && j.contains("error") && j.contains("id") && j["id"].is_null();
  } catch (const json::exception&) {
    return false;
  }
}

} // namespace smcp::transport::http
